"""The SDK runs where the server does not: importing it (and `defectlab remote`) loads nothing
of Django or the server's stack; and the server's own processes do not load the SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import defectlab

SOURCE = Path(defectlab.__file__).parent.parent
SERVER_STACK = (
    "django",
    "rest_framework",
    "drf_spectacular",
    "dramatiq",
    "psycopg",
    "boto3",
    "PIL",
    "numpy",
)


def modules_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after ``statement``, without the test settings in
    its environment (a laptop with only the package installed)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO", "DEFECTLAB"))
    }
    env["PYTHONPATH"] = str(SOURCE)
    script = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    output = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(output.splitlines()[-1]))


def test_the_client_imports_nothing_of_the_server() -> None:
    loaded = modules_after("import defectlab.client, defectlab.client.cli")
    top = {name.split(".")[0] for name in loaded}
    assert "httpx" in top and "defectlab.client.cli" in loaded
    assert "defectlab.client.detection" in loaded
    assert not top & set(SERVER_STACK), top & set(SERVER_STACK)
    ours = {name for name in loaded if name.startswith("defectlab.")}
    # The signing rule is shared with the service, and plain Python (it imports nothing).
    allowed = ("defectlab.client", "defectlab.signature")
    assert ours and all(name.startswith(allowed) for name in ours), ours


def test_the_detection_client_imports_nothing_of_the_server() -> None:
    loaded = modules_after("from defectlab.client.detection import DetectionClient")
    top = {name.split(".")[0] for name in loaded}
    assert "httpx" in top and not top & set(SERVER_STACK), top & set(SERVER_STACK)
    ours = {name for name in loaded if name.startswith("defectlab.")}
    assert "defectlab.signature" in ours
    assert all(name.startswith(("defectlab.client", "defectlab.signature")) for name in ours)


def test_the_defectlab_command_loads_the_client_only_for_remote_and_detect() -> None:
    assert "httpx" not in modules_after("import defectlab.cli")
    for command in ("remote", "detect"):
        loaded = modules_after(
            "import click, defectlab.cli\n"
            f"defectlab.cli.main.get_command(click.Context(defectlab.cli.main), {command!r})"
        )
        assert "httpx" in loaded and "defectlab.client.detection" in loaded, command
        assert not {name.split(".")[0] for name in loaded} & set(SERVER_STACK), command
