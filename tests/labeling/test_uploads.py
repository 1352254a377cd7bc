"""POST /api/projects/{id}/upload/: images and zip archives land all together, or not at all.

Every refused upload must answer a 4xx ``{"error": {"code", "message"}}`` naming the file (or
zip entry) at fault, and leave nothing behind: no task rows, unchanged project counters and no
new file under settings.STORAGE_DIR."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError
from PIL import Image, ImageFile
from rest_framework.test import APIClient

from defectlab.labeling.models import Project, Task
from defectlab.media.storage import default_storage
from defectlab.synthetic import grayscale16
from defectlab.tenancy.models import Role
from tests.conftest import Tenant, client_for, jpeg_bytes, png_bytes
from tests.test_images import blank_bilevel_png, rotated_jpeg

MB = 1024 * 1024
COUNTERS = ("count_new", "count_in_progress", "count_submitted", "count_approved", "count_rejected")


# --- helpers ------------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def zip_of(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def upload(client: APIClient, project: Project, *files: tuple[str, bytes], **headers: str) -> Any:
    payload = {"files": [SimpleUploadedFile(name, data) for name, data in files]}
    return client.post(
        f"/api/projects/{project.pk}/upload/", payload, format="multipart", headers=headers
    )


def owner(tenant: Tenant) -> APIClient:
    return client_for(tenant.user(Role.OWNER))


def stored_files(root: Path) -> set[str]:
    if not root.exists():
        return set()
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


@dataclass(frozen=True)
class Snapshot:
    """What an upload could leave behind: task rows, the project's counters, stored files."""

    tasks: int
    counters: tuple[int, ...]
    files: frozenset[str]

    @classmethod
    def take(cls, project: Project, root: Path) -> Snapshot:
        project.refresh_from_db()
        return cls(
            tasks=Task.objects.count(),
            counters=tuple(getattr(project, counter) for counter in COUNTERS),
            files=frozenset(stored_files(root)),
        )


def assert_refused(response: Any, status: int, *, code: str | None, naming: str | None) -> None:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["code"], str) and error["code"]
    if code is not None:
        assert error["code"] == code
    if naming is not None:
        assert naming in error["message"]


def refuse_and_leave_nothing(
    tenant: Tenant,
    root: Path,
    files: list[tuple[str, bytes]],
    *,
    status: int,
    code: str | None = None,
    naming: str | None = None,
) -> None:
    before = Snapshot.take(tenant.project, root)
    response = upload(owner(tenant), tenant.project, *files)
    assert_refused(response, status, code=code, naming=naming)
    assert Snapshot.take(tenant.project, root) == before


# --- refusals: the request is refused as a whole and nothing is left ----------------------------


def test_truncated_jpeg_refuses_the_request_and_removes_the_good_png_already_stored(
    tenant: Tenant, storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jpeg = encode(Image.effect_noise((256, 256), 64).convert("RGB"), "JPEG")
    saved: list[str] = []
    storage_class = type(default_storage())
    original_save = storage_class.save

    def spying_save(self: Any, key: str, data: bytes) -> None:
        saved.append(key)
        original_save(self, key, data)

    monkeypatch.setattr(storage_class, "save", spying_save)
    refuse_and_leave_nothing(
        tenant,
        storage_dir,
        [("good.png", png_bytes()), ("scratch_01.jpg", jpeg[: len(jpeg) // 2])],
        status=400,
        code="truncated",
        naming="scratch_01.jpg",
    )
    assert len(saved) == 1  # the PNG really was stored first, and then removed again


def test_30000_square_png_is_refused_as_too_many_pixels_before_any_pixel_is_decoded(
    tenant: Tenant, storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = blank_bilevel_png(30_000)
    assert len(bomb) < MB  # tiny on the wire, 900 megapixels once decoded
    decoded: list[Image.Image] = []

    def forbidden_load(self: ImageFile.ImageFile) -> None:
        decoded.append(self)
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", forbidden_load)
    refuse_and_leave_nothing(
        tenant,
        storage_dir,
        [("bomb.png", bomb)],
        status=400,
        code="too_many_pixels",
        naming="bomb.png",
    )
    assert decoded == []  # refused from the header alone: quick, and no 900 MP buffer


@pytest.mark.parametrize(
    "entry",
    ["../evil.png", "/etc/evil.png", "..\\evil.png", "C:/evil.png", "ok/../../evil.png"],
    ids=["dot-dot", "absolute", "backslash-dot-dot", "drive-letter", "nested-dot-dot"],
)
def test_zip_entry_pointing_outside_the_archive_is_refused_and_nothing_is_stored(
    tenant: Tenant, storage_dir: Path, entry: str
) -> None:
    archive = zip_of({"a.png": png_bytes(), entry: png_bytes(), "z.png": png_bytes()})
    refuse_and_leave_nothing(
        tenant,
        storage_dir,
        [("first.png", png_bytes()), ("batch.zip", archive)],
        status=400,
        code="unsafe_path",
        naming=entry,
    )


def test_text_file_named_jpg_is_refused_naming_it(tenant: Tenant, storage_dir: Path) -> None:
    refuse_and_leave_nothing(
        tenant,
        storage_dir,
        [("good.png", png_bytes()), ("photo.jpg", b"defect list\nscratch, dent\n")],
        status=400,
        code="unreadable",
        naming="photo.jpg",
    )


def test_zip_holding_a_non_image_is_refused_and_its_earlier_images_are_removed(
    tenant: Tenant, storage_dir: Path
) -> None:
    archive = zip_of({"a.png": png_bytes(), "b.jpg": jpeg_bytes(), "notes.txt": b"all fine"})
    refuse_and_leave_nothing(
        tenant,
        storage_dir,
        [("batch.zip", archive)],
        status=400,
        code="unsupported_format",
        naming="notes.txt",
    )


def test_damaged_image_inside_a_zip_is_refused_naming_the_entry(
    tenant: Tenant, storage_dir: Path
) -> None:
    jpeg = encode(Image.effect_noise((256, 256), 64).convert("RGB"), "JPEG")
    archive = zip_of({"ok.png": png_bytes(), "parts/cut.jpg": jpeg[: len(jpeg) // 2]})
    refuse_and_leave_nothing(
        tenant,
        storage_dir,
        [("batch.zip", archive)],
        status=400,
        code="truncated",
        naming="parts/cut.jpg",
    )


def test_zip_entry_failing_its_checksum_is_refused_as_damaged(
    tenant: Tenant, storage_dir: Path
) -> None:
    image = png_bytes(200, 100)
    archive = bytearray(zip_of({"ok.png": png_bytes(), "crc.png": image}, zipfile.ZIP_STORED))
    start = archive.rfind(image)  # stored, so the PNG sits verbatim in the archive
    archive[start + len(image) // 2] ^= 0xFF
    refuse_and_leave_nothing(
        tenant, storage_dir, [("batch.zip", bytes(archive))], status=400, naming="crc.png"
    )


def test_file_named_zip_that_is_not_a_zip_is_refused(tenant: Tenant, storage_dir: Path) -> None:
    refuse_and_leave_nothing(
        tenant,
        storage_dir,
        [("good.png", png_bytes()), ("x.zip", bytes(range(256)) * 40)],
        status=400,
        naming="x.zip",
    )


def test_request_without_files_is_refused(tenant: Tenant, storage_dir: Path) -> None:
    refuse_and_leave_nothing(tenant, storage_dir, [], status=400)


def test_zip_holding_only_junk_is_refused_as_empty(tenant: Tenant, storage_dir: Path) -> None:
    archive = zip_of({"__MACOSX/._a.png": b"\x00\x05\x16\x07", ".DS_Store": b"Bud1"})
    refuse_and_leave_nothing(tenant, storage_dir, [("mac.zip", archive)], status=400, code="empty")


def test_zip_with_more_entries_than_max_archive_files_is_refused_as_too_large(
    tenant: Tenant, storage_dir: Path, settings: Any
) -> None:
    settings.MAX_ARCHIVE_FILES = 2
    archive = zip_of({f"img_{index}.png": png_bytes() for index in range(3)})
    refuse_and_leave_nothing(
        tenant,
        storage_dir,
        [("good.png", png_bytes()), ("three.zip", archive)],
        status=413,
        code="too_large",
        naming="three.zip",
    )


def test_zip_entry_unpacking_past_max_upload_mb_is_refused_as_too_large(
    tenant: Tenant, storage_dir: Path, settings: Any
) -> None:
    settings.MAX_UPLOAD_MB = 1
    archive = zip_of({"a.png": png_bytes(), "huge.png": bytes(MB + MB // 2)})
    assert len(archive) < MB // 10  # zeros compress well: only the unpacked size is too big
    refuse_and_leave_nothing(
        tenant,
        storage_dir,
        [("small.zip", archive)],
        status=413,
        code="too_large",
        naming="huge.png",
    )


def test_zip_whose_entries_unpack_past_max_archive_mb_is_refused_as_too_large(
    tenant: Tenant, storage_dir: Path, settings: Any
) -> None:
    settings.MAX_ARCHIVE_MB = 1
    archive = zip_of({"a.png": bytes(MB // 2 + 1), "b.png": bytes(MB // 2 + 1)})
    refuse_and_leave_nothing(
        tenant,
        storage_dir,
        [("good.png", png_bytes()), ("dense.zip", archive)],
        status=413,
        code="too_large",
        naming="dense.zip",
    )


def test_single_image_larger_than_max_upload_mb_is_refused_as_too_large(
    tenant: Tenant, storage_dir: Path, settings: Any
) -> None:
    settings.MAX_UPLOAD_MB = 1
    refuse_and_leave_nothing(
        tenant,
        storage_dir,
        [("good.png", png_bytes()), ("big.png", bytes(MB + 1))],
        status=413,
        code="too_large",
        naming="big.png",
    )


def test_database_failure_after_files_were_stored_leaves_no_files(
    tenant: Tenant, storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failing INSERT cannot be provoked through the API (the rows are built by the server), so
    # bulk_create is made to fail the way a lost connection or full disk would make it fail.
    before = Snapshot.take(tenant.project, storage_dir)
    stored_at_failure: list[set[str]] = []

    def failing_bulk_create(*args: Any, **kwargs: Any) -> list[Task]:
        stored_at_failure.append(stored_files(storage_dir) - before.files)
        raise DatabaseError("simulated: the database went away")

    monkeypatch.setattr(Task.objects, "bulk_create", failing_bulk_create)
    with pytest.raises(DatabaseError):
        upload(owner(tenant), tenant.project, ("a.png", png_bytes()), ("b.jpg", jpeg_bytes()))
    assert len(stored_at_failure) == 1 and len(stored_at_failure[0]) == 2  # both were on disk
    assert Snapshot.take(tenant.project, storage_dir) == before


# --- good uploads ---------------------------------------------------------------------------------


def test_images_of_every_format_and_a_zip_in_one_request_create_one_task_each(
    tenant: Tenant, storage_dir: Path
) -> None:
    sixteen = grayscale16(seed=3, width=40, height=30)
    files = {
        "photo.jpg": (jpeg_bytes(64, 48), (64, 48)),
        "plain.png": (png_bytes(32, 16), (32, 16)),
        "scan.bmp": (encode(Image.new("RGB", (20, 10), (1, 2, 3)), "BMP"), (20, 10)),
        "frame.tif": (encode(Image.new("RGB", (12, 34), (4, 5, 6)), "TIFF"), (12, 34)),
        "sensor16.tif": (encode(sixteen, "TIFF"), (40, 30)),
        "sensor16.png": (encode(sixteen, "PNG"), (40, 30)),
    }
    entries = {
        "batch/part_a.png": (png_bytes(10, 20), (10, 20)),
        "batch/sub/part_b.jpeg": (jpeg_bytes(30, 40), (30, 40)),
        "top.TIFF": (encode(sixteen, "TIFF"), (40, 30)),
    }
    archive = zip_of({name: data for name, (data, _) in entries.items()})
    expected = files | entries
    before = Snapshot.take(tenant.project, storage_dir)

    response = upload(
        owner(tenant),
        tenant.project,
        *[(name, data) for name, (data, _) in files.items()],
        ("batch.zip", archive),
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] == len(expected)
    assert sorted(task["file_name"] for task in body["tasks"]) == sorted(expected)
    assert all(task["image_url"] and task["thumbnail_url"] for task in body["tasks"])
    created = Task.objects.filter(project=tenant.project).exclude(
        pk__in=[task.pk for task in tenant.tasks]
    )
    assert sorted(task.file_name for task in created) == sorted(expected)
    storage = default_storage()
    for task in created:
        data, size = expected[task.file_name]
        assert (task.width, task.height) == size, task.file_name
        assert task.size_bytes == len(data)
        assert task.status == "new"
        assert storage.read(task.image) == data  # the original bytes, stored as uploaded
    after = Snapshot.take(tenant.project, storage_dir)
    assert after.tasks == before.tasks + len(expected)
    assert after.counters == (before.counters[0] + len(expected), *before.counters[1:])
    assert after.files - before.files == {task.image for task in created}


def test_macos_junk_in_a_zip_is_skipped(tenant: Tenant, storage_dir: Path) -> None:
    archive = zip_of(
        {
            "shots/": b"",
            "shots/a.png": png_bytes(),
            "__MACOSX/shots/._a.png": b"\x00\x05\x16\x07 apple double",
            "shots/.DS_Store": b"Bud1 not an image",
            "._b.png": b"\x00\x05\x16\x07",
            "Thumbs.db": b"windows junk",
        }
    )
    response = upload(owner(tenant), tenant.project, ("mac.zip", archive))
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 1
    assert [task["file_name"] for task in response.json()["tasks"]] == ["shots/a.png"]
    tenant.project.refresh_from_db()
    assert tenant.project.count_new == len(tenant.tasks) + 1


def test_exif_rotated_jpeg_gets_width_and_height_after_rotation(
    tenant: Tenant, storage_dir: Path
) -> None:
    # 40x20 stored pixels tagged "rotate 90°": shown (and annotated) as 20 wide, 40 high.
    response = upload(owner(tenant), tenant.project, ("rotated.jpg", rotated_jpeg(6)))
    assert response.status_code == 201, response.content
    (task,) = response.json()["tasks"]
    assert (task["width"], task["height"]) == (20, 40)
    stored = Task.objects.get(pk=task["id"])
    assert (stored.width, stored.height) == (20, 40)
