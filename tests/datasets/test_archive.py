"""The guarded reader: unsafe entries, symlinks, bombs and limits refuse the whole archive."""

from __future__ import annotations

import io
import os
import pickle
import stat
import zipfile
from pathlib import Path

import pytest

from defectlab.datasets import DatasetError, Limits, export, load
from defectlab.datasets.archive import Spool, ZipSink, unsafe_name
from defectlab.geometry import Shape
from tests.datasets.support import HEADER, export_to, item, png, write_zip

YOLO = {"data.yaml": "names: [scratch]\n", "images/train/a.png": png(10, 10)}


@pytest.mark.parametrize(
    "name", ["../evil.txt", "images/../../evil.txt", "/etc/passwd", "C:/x.txt", "a\\..\\b.txt"]
)
def test_entries_that_escape_the_archive_refuse_it(tmp_path: Path, name: str) -> None:
    path = write_zip(tmp_path / "evil.zip", {**YOLO, name: "x"})
    with pytest.raises(DatasetError, match="points outside the archive") as caught:
        load("yolo", path)
    assert caught.value.where == name


def test_unsafe_names() -> None:
    for name in ["", ".", "a/./b", "a/../b", "..", "a\\b", "/a", "a\x00b", "D:x"]:
        assert unsafe_name(name), name
    for name in ["a", "a/b.png", "lot 1/a..b.png", "中文/图.png"]:
        assert not unsafe_name(name), name


def test_symlink_entries_refuse_the_archive(tmp_path: Path) -> None:
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in YOLO.items():
            archive.writestr(name, data)
        link = zipfile.ZipInfo("images/train/b.png")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(DatasetError, match="Symbolic links") as caught:
        load("yolo", path)
    assert caught.value.where == "images/train/b.png"


def test_symlinks_in_a_folder_refuse_it(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    (root / "images/train").mkdir(parents=True)
    (root / "data.yaml").write_text("names: [scratch]\n")
    (root / "images/train/a.png").write_bytes(png(10, 10))
    os.symlink("/etc/passwd", root / "images/train/b.png")
    with pytest.raises(DatasetError, match="Symbolic links") as caught:
        load("yolo", root)
    assert caught.value.where == "images/train/b.png"


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in YOLO.items():
            archive.writestr(name, data)
        archive.writestr("labels/train/a.txt", b"\n" * (8 << 20))
    with pytest.raises(DatasetError, match="zip bomb") as caught:
        load("yolo", path)
    assert caught.value.where == "labels/train/a.txt"


def test_limits_on_entries_and_sizes(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", {**YOLO, "labels/train/a.txt": "0 0.5 0.5 0.5 0.5\n"})
    with pytest.raises(DatasetError, match="holds 3 files; the limit is 2"):
        load("yolo", path, limits=Limits(max_entries=2))
    with pytest.raises(DatasetError, match="larger than the import limit") as caught:
        load("yolo", path, limits=Limits(max_member_bytes=30))
    assert caught.value.where == "images/train/a.png"
    with pytest.raises(DatasetError, match="unpacks to more"):
        load("yolo", path, limits=Limits(max_total_bytes=100))
    with pytest.raises(DatasetError, match="too large to import") as caught:
        load("yolo", path, limits=Limits(max_text_bytes=10))
    assert caught.value.where == "data.yaml"
    with pytest.raises(DatasetError, match="too many pixels"):
        load("yolo", path, limits=Limits(max_image_pixels=99))


def test_encrypted_and_damaged_archives(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", YOLO)
    data = bytearray(path.read_bytes())
    # Set the "encrypted" flag bit in the central directory record of every entry.
    offset = data.find(b"PK\x01\x02")
    while offset != -1:
        data[offset + 8] |= 1
        offset = data.find(b"PK\x01\x02", offset + 4)
    (tmp_path / "enc.zip").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="encrypted"):
        load("yolo", tmp_path / "enc.zip")
    with pytest.raises(DatasetError, match="no file or folder"):
        load("yolo", tmp_path / "missing.zip")


def test_junk_entries_and_a_wrapping_folder_are_ignored(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "wrapped.zip",
        {
            "my export/data.yaml": "names: [scratch]\n",
            "my export/images/train/a.png": png(10, 10),
            "my export/labels/train/a.txt": "0 0.5 0.5 0.5 0.5\n",
            "__MACOSX/my export/._a.png": "junk",
            "my export/.DS_Store": "junk",
        },
    )
    with load("yolo", path) as dataset:
        assert [entry.file_name for entry in dataset.items] == ["a.png"]
        assert len(dataset.items[0].shapes) == 1


def test_an_unzipped_export_folder_loads_like_the_zip(tmp_path: Path) -> None:
    path, _stats = export_to(
        tmp_path, "cvat", HEADER, [item(shapes=[Shape.box(1, 1, 5, 5, label=11)])]
    )
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    with load("cvat", folder) as dataset:
        (entry,) = dataset.items
        assert len(entry.shapes) == 1 and entry.image is not None
        with entry.image() as image:
            assert image.read() == png(100, 80)


def test_export_refuses_unsafe_and_duplicate_member_names() -> None:
    with pytest.raises(DatasetError, match="not a safe relative path") as caught:
        export("coco", HEADER, iter([item("../a.png")]), io.BytesIO())
    assert caught.value.where == "images/default/../a.png"
    with pytest.raises(DatasetError, match="same file") as caught:
        export("voc", HEADER, iter([item("a.png"), item("a.png", split="val")]), io.BytesIO())
    assert caught.value.where == "JPEGImages/a.png"


def test_export_names_the_item_whose_image_cannot_be_read() -> None:
    def missing() -> io.BytesIO:
        raise FileNotFoundError("gone")

    with pytest.raises(DatasetError, match="could not be read") as caught:
        export("yolo", HEADER, iter([item("a.png", image=missing)]), io.BytesIO())
    assert caught.value.where == "images/train/a.png"


def test_export_refuses_a_shape_whose_label_is_not_in_the_header() -> None:
    with pytest.raises(DatasetError, match="label 99") as caught:
        export("coco", HEADER, iter([item(shapes=[Shape.box(1, 1, 5, 5, label=99)])]), io.BytesIO())
    assert caught.value.where == "a.png"


def test_unknown_format() -> None:
    with pytest.raises(DatasetError, match="Unknown dataset format “nope”"):
        export("nope", HEADER, iter([]), io.BytesIO())


def test_dataset_error_pickles_with_its_location() -> None:
    error = DatasetError("Bad line.", where="labels/a.txt line 3")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.problem, copy.where, str(copy)) == ("Bad line.", "labels/a.txt line 3", str(error))
    assert copy.details == {"where": "labels/a.txt line 3"} and copy.status == 400


def test_sink_reports_the_archive_size_on_seekable_output() -> None:
    out = io.BytesIO(b"prefix")
    out.seek(0, 2)
    sink = ZipSink(out)
    sink.write_text("a.txt", "hello")
    assert sink.close() == len(out.getvalue()) - len(b"prefix")


def _spooled(spool: Spool) -> bytes:
    out = io.BytesIO()
    spool.copy_into(out)
    return out.getvalue()


def test_spool_extend_writes_what_add_writes() -> None:
    texts = ["{}", '{"a": "中文"}', "[]", "x"]
    one, many = Spool(), Spool()
    for text in texts:
        one.add(text, separator=",\n")
    many.extend([], separator=",\n")  # nothing, and no separator before the first text
    many.extend(texts[:1], separator=",\n")
    many.extend(texts[1:3], separator=",\n")
    many.extend([], separator=",\n")
    many.extend(texts[3:], separator=",\n")
    assert one.count == many.count == len(texts)
    assert _spooled(many) == _spooled(one) == ",\n".join(texts).encode()
