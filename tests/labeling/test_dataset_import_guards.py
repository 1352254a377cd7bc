"""The import job's limits, seen from the project: an export within the image limit imports back,
images declared larger than the pixel limit are refused even when kept by reference, a bomb of
small members is refused as a whole, and an archive that brings nothing says why."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from defectlab.geometry import Shape
from defectlab.jobs.models import JobState
from defectlab.labeling.models import Task
from defectlab.tenancy.models import Role
from tests.conftest import Tenant
from tests.labeling.test_dataset_roundtrip import (
    Drawn,
    Snapshot,
    download,
    empty_project,
    fill,
    image_bytes,
    manager,
    run_export,
    run_import,
    source_project,
)
from tests.labeling.test_uploads import encode, refuse_and_leave_nothing, zip_of

pytestmark = pytest.mark.django_db


def zipped(members: dict[str, bytes | str], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["yolo", "voc"])
def test_an_export_of_as_many_images_as_the_limit_imports_back(
    tenant: Tenant, settings: Any, fmt: str
) -> None:
    # The rule at a small scale: DEFECTLAB_MAX_ARCHIVE_FILES counts images, and these formats
    # write a second file (label, annotation) for every image.
    settings.MAX_ARCHIVE_FILES = 6
    source = source_project(tenant)
    drawn = [
        Drawn(
            f"part-{index}.png",
            image_bytes(40, 30, index),
            [("dent", Shape.box(2, 2, 9, 9, label=0))],
        )
        for index in range(6)
    ]
    fill(source, tenant.user(Role.MANAGER), drawn)
    client = manager(tenant)
    archive = download(client, run_export(client, source, format=fmt))
    assert len(zipfile.ZipFile(io.BytesIO(archive)).namelist()) > 12
    target = empty_project(tenant)
    job = run_import(client, target, fmt, archive)
    assert job.state == JobState.SUCCEEDED, job.error
    assert Task.objects.filter(project=target).count() == 6
    # One image more than the limit is refused, saying so in images.
    fill(source, tenant.user(Role.MANAGER), [Drawn("part-6.png", image_bytes(40, 30, 6), [])])
    bigger = download(client, run_export(client, source, format=fmt))
    job = run_import(client, empty_project(tenant, "Second"), fmt, bigger)
    assert job.state == JobState.FAILED
    assert job.error == "The archive holds 7 images; the limit is 6."


def test_a_coco_file_declaring_a_huge_image_by_reference_is_refused(
    tenant: Tenant, storage_dir: Path
) -> None:
    data = {
        "categories": [{"id": 1, "name": "scratch"}],
        "images": [
            {
                "id": 1,
                "file_name": "https://cameras.example/line-3/0001.jpg",
                "width": 2_000_000_000,
                "height": 2_000_000_000,
            }
        ],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]}],
    }
    target = empty_project(tenant)
    before = Snapshot.take(target, storage_dir)
    job = run_import(
        manager(tenant),
        target,
        "coco",
        zipped({"annotations/instances_default.json": json.dumps(data)}),
    )
    assert job.state == JobState.FAILED
    assert job.error == (
        "annotations/instances_default.json: images[0]: This image has too many pixels."
    )
    assert Snapshot.take(target, storage_dir) == before


def test_a_bomb_of_small_members_is_refused_as_a_whole(tenant: Tenant, storage_dir: Path) -> None:
    # Members of 1 MB or less are not checked one by one; together they are.
    members: dict[str, bytes | str] = {"data.yaml": "names: [scratch]\n"}
    members |= {f"filler/{index:04d}.bin": b"\0" * (1 << 20) for index in range(40)}
    target = empty_project(tenant)
    before = Snapshot.take(target, storage_dir)
    job = run_import(manager(tenant), target, "yolo", zipped(members))
    assert job.state == JobState.FAILED
    assert "compressed suspiciously well" in job.error
    assert Snapshot.take(target, storage_dir) == before


@pytest.mark.parametrize(
    ("fmt", "members", "example"),
    [
        (
            "yolo",
            {"data.yaml": "names: [scratch]\n", "scans/0001.bin": os.urandom(2000)},
            "data.yaml",
        ),
        (
            "coco",
            {
                "annotations/instances_default.json": json.dumps(
                    {"categories": [{"id": 1, "name": "scratch"}], "images": []}
                ),
                "notes.txt": "nothing here",
            },
            "annotations/instances_default.json",
        ),
    ],
)
def test_an_import_that_brings_nothing_says_why(
    tenant: Tenant, fmt: str, members: dict[str, bytes | str], example: str
) -> None:
    job = run_import(manager(tenant), empty_project(tenant), fmt, zipped(members))
    assert job.state == JobState.FAILED
    assert job.error.startswith("Nothing to import: the archive's 2 files (“" + example)
    assert "hold no image or annotation that the" in job.error
    assert not Task.objects.filter(project__name="Target").exists()


def test_an_image_upload_and_a_dataset_import_refuse_the_same_overcompressed_image(
    tenant: Tenant, storage_dir: Path
) -> None:
    """One rule for zip bombs (``defectlab.zipsafety``): a 3.6 MB black BMP deflates over 250
    times smaller, which no photo of a part does; both ways in refuse it before decoding it."""
    black = encode(Image.new("RGB", (1200, 1000)), "BMP")
    photo = image_bytes(64, 48, 1)
    archive = zip_of({"ok.png": photo, "lot7/black.bmp": black})
    refuse_and_leave_nothing(
        tenant,
        storage_dir,
        [("batch.zip", archive)],
        status=400,
        code="zip_bomb",
        naming="lot7/black.bmp",
    )

    members: dict[str, bytes | str] = {
        "data.yaml": "names: [scratch]\n",
        "images/train/ok.png": photo,
        "images/train/black.bmp": black,
    }
    target = empty_project(tenant)
    before = Snapshot.take(target, storage_dir)
    job = run_import(manager(tenant), target, "yolo", zipped(members))
    assert job.state == JobState.FAILED
    assert job.error == (
        "images/train/black.bmp: This entry is compressed suspiciously well (a zip bomb?)."
    )
    assert Snapshot.take(target, storage_dir) == before
