"""Large uploads and export spools wait on the data volume, never in /tmp: /tmp is a small
RAM tmpfs in compose and a small emptyDir in Kubernetes, while nginx takes 4 GB bodies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.test import RequestFactory

from defectlab.config import temp_dir
from defectlab.datasets.archive import Spool
from tests.deploy.kube import K8S, containers, env_of, find, pod_spec, render

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
APP_LOCATIONS = (ROOT / "deploy" / "nginx" / "app-locations.conf").read_text()
ROLES = ("web", "worker", "inference")
MIB = 1024 * 1024
UNITS = {"Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB}


def nginx_body_limit() -> int:
    match = re.search(r"^client_max_body_size (\d+)m;", APP_LOCATIONS, re.M)
    assert match
    return int(match.group(1)) * MIB


def quantity(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([KMG]i)", text).groups()  # type: ignore[union-attr]
    return int(number) * UNITS[unit]


def test_an_upload_past_the_memory_limit_is_written_under_the_data_directory() -> None:
    assert str(Path(settings.DATA_DIR) / "tmp") == settings.FILE_UPLOAD_TEMP_DIR
    handler = TemporaryFileUploadHandler(RequestFactory().post("/"))
    handler.new_file("file", "big.tif", "image/tiff", settings.FILE_UPLOAD_MAX_MEMORY_SIZE + 1)
    try:
        path = Path(handler.file.temporary_file_path())
        assert path.parent == Path(settings.DATA_DIR) / "tmp"
    finally:
        handler.file.close()


def test_an_export_spool_rolls_over_to_the_data_directory() -> None:
    spool = Spool()
    try:
        assert spool._file._TemporaryFileArgs["dir"] == str(Path(settings.DATA_DIR) / "tmp")
    finally:
        spool.close()


def test_a_read_only_data_directory_leaves_the_systems_temporary_directory(tmp_path: Path) -> None:
    assert temp_dir(tmp_path / "data") == tmp_path / "data" / "tmp"
    # A tenant's detection service mounts /data read-only (root-proof here: not a directory).
    (tmp_path / "read-only").write_text("")
    assert temp_dir(tmp_path / "read-only") is None


@pytest.mark.parametrize("role", ROLES)
def test_compose_gives_tmp_a_size_and_the_data_directory_a_volume(role: str) -> None:
    service = COMPOSE["services"][role]
    data_dir = service["environment"]["DEFECTLAB_DATA_DIR"]
    mounts = service["volumes"]
    assert f"data:{data_dir}" in mounts  # the named volume: where big uploads wait
    (tmp,) = [m for m in mounts if isinstance(m, dict) and m["target"] == "/tmp"]
    assert tmp["type"] == "tmpfs"
    # In RAM: bounded, and far below what nginx lets through to the app.
    assert 0 < tmp["tmpfs"]["size"] <= 512 * MIB < nginx_body_limit()
    assert "tmpfs" not in service  # not a second, unbounded one


@pytest.mark.parametrize("role", ROLES)
def test_kubernetes_sizes_tmp_and_mounts_the_data_directory(role: str) -> None:
    deployment = find(render(K8S / "base"), "Deployment", f"defectlab-{role}")
    spec = pod_spec(deployment)
    assert spec is not None
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    (container,) = containers(deployment)
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert (
        "persistentVolumeClaim"
        in volumes[mounts[env_of(container).get("DEFECTLAB_DATA_DIR", "/data")]]
    )
    size = quantity(volumes[mounts["/tmp"]]["emptyDir"]["sizeLimit"])
    assert 0 < size <= 1024 * MIB < nginx_body_limit()


def test_transaction_pooling_turns_server_side_cursors_off(tmp_path: Path) -> None:
    """Behind PgBouncer in transaction mode (docs/install.md, "PostgreSQL connections") a
    server-side cursor would outlive the transaction that opened it on the server."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json; from defectlab import settings as s; "
        "print(json.dumps(s.DATABASES['default'].get('DISABLE_SERVER_SIDE_CURSORS')))"
    )
    for given, expected in (("true", True), ("", False)):
        env = {
            **os.environ,
            "DEFECTLAB_DATA_DIR": str(tmp_path),
            "DEFECTLAB_DATABASE_URL": "postgresql://user:pass@127.0.0.1:6432/defectlab",
            "DEFECTLAB_DATABASE_TRANSACTION_POOLING": given,
        }
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        assert json.loads(result.stdout) is expected
