"""The web and the worker start without the engine's heavy libraries: the registry's API,
pages and job kind load numpy / OpenCV / onnx / onnxruntime (about 70 MB a process) only when
a file is read or a detector built, never on import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import defectlab

HEAVY = ("onnx", "onnxruntime", "cv2")
PROBE = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "defectlab.settings")
import django
django.setup()  # every app's jobs.py is imported here (jobs.apps)
import defectlab.urls, defectlab.inference.api, defectlab.inference.registry, defectlab.web.registry
from defectlab.jobs import kinds
assert "model_check" in kinds.KINDS
print(",".join(sorted(name for name in {HEAVY} if name in sys.modules)))
"""


def test_the_registry_imports_without_the_engines_libraries(tmp_path: Path) -> None:
    source = str(Path(defectlab.__file__).parents[1])
    environment = {
        **os.environ,
        "PYTHONPATH": source,
        "DEFECTLAB_DATA_DIR": str(tmp_path),
        "DEFECTLAB_SECRET_KEY": "test-only-secret-key-0123456789",
        "DEFECTLAB_DATABASE_URL": "",
    }
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    probe = PROBE.replace("{HEAVY}", repr(HEAVY))
    done = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
