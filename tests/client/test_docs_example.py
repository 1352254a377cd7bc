"""docs/sdk.md's complete example, run as it is written: its Python block in a fresh interpreter
(no Django settings, as on a laptop) against a live server, with a folder of images; then the
YOLO zip it writes is opened."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import defectlab
from defectlab.labeling.models import Project, Task
from defectlab.tenancy.models import User
from defectlab.tenancy.services import create_api_token
from tests.client.conftest import Server, defect_image

ROOT = Path(__file__).resolve().parent.parent.parent
SOURCE = Path(defectlab.__file__).parent.parent


def example() -> str:
    page = (ROOT / "docs" / "sdk.md").read_text()
    section = page[page.index("## A complete example") : page.index("## Connecting")]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return code


def test_the_complete_example_runs_against_a_live_server(server: Server, tmp_path: Path) -> None:
    user = User.objects.get(email=server.email)
    _token, key = create_api_token(user, "docs example")
    spots = [(4, 6, 19, 15), (30, 10, 45, 30), (10, 20, 22, 40), (40, 2, 60, 12), (5, 5, 9, 9)]
    for number, spot in enumerate(spots):
        defect_image(tmp_path / "images" / f"seam_{number}.png", spot)
    (tmp_path / "example.py").write_text(example())
    env = {
        key_: value
        for key_, value in os.environ.items()
        if not key_.startswith(("DJANGO", "DEFECTLAB"))
    }
    env |= {"PYTHONPATH": str(SOURCE), "DEFECTLAB_URL": server.url, "DEFECTLAB_TOKEN": key}
    run = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "5 images uploaded" in run.stdout

    project = Project.objects.get(name="Weld seams")
    assert set(Task.objects.filter(project=project).values_list("status", flat=True)) == {
        "approved"
    }
    with zipfile.ZipFile(tmp_path / "weld-seams-yolo.zip") as archive:
        names = archive.namelist()
        labels = sorted(name for name in names if name.startswith("labels/"))
        images = [name for name in names if name.startswith("images/")]
        assert len(labels) == len(images) == 5
        assert {name.split("/")[1] for name in images} == {"train", "val"}
        for number, spot in enumerate(spots):
            (label_file,) = [name for name in labels if name.endswith(f"/seam_{number}.txt")]
            (line,) = archive.read(label_file).decode().splitlines()
            class_id, cx, _cy, width, _height = line.split()
            x1, _y1, x2, _y2 = spot
            assert class_id == "0"  # crack, the first class
            assert abs(float(cx) - (x1 + x2 + 1) / 2 / 64) < 1e-3  # getbbox's right edge is open
            assert abs(float(width) - (x2 + 1 - x1) / 64) < 1e-3
