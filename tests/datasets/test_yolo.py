"""YOLO export layout and the import paths the round trip does not cover."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import yaml
from PIL import Image

from defectlab.datasets import export, load
from defectlab.datasets.archive import STORE_TEXT_BELOW
from defectlab.geometry import Shape, ShapeType
from tests.datasets.support import HEADER, export_to, item, opener, png, write_zip
from tests.test_images import damaged_exif_png

SCRATCH, DENT = 11, 12


def jpeg(width: int = 64, height: int = 48, orientation: int | None = None) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.new("RGB", (width, height), (200, 10, 10)).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def test_every_image_has_a_label_file_and_data_yaml_names_the_classes(tmp_path: Path) -> None:
    items = [
        item("a.png", shapes=[Shape.box(10, 10, 30, 40, label=SCRATCH)], split="train"),
        item("b.png", split="train"),  # nothing drawn: an empty label file
        item("c.png", shapes=[Shape.box(1, 2, 3, 4, label=DENT)], split="val"),
        item("lot 7/d.png", split="test"),
        item("e.png"),  # no split: train
    ]
    path, stats = export_to(tmp_path, "yolo", HEADER, items)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        images = [n for n in names if n.startswith("images/")]
        labels = [n for n in names if n.startswith("labels/")]
        assert len(images) == len(labels) == len(items) == stats.images == stats.items
        assert "labels/test/lot 7/d.txt" in labels
        assert archive.read("labels/train/b.txt") == b""
        assert archive.read("labels/train/a.txt") == b"0 0.2 0.3125 0.2 0.375\n"
        data = yaml.safe_load(archive.read("data.yaml"))
    assert data["names"] == ["scratch", "dent"]
    assert data["nc"] == 2
    assert (data["train"], data["val"], data["test"]) == (
        "images/train",
        "images/val",
        "images/test",
    )


def test_images_are_copied_byte_for_byte_and_stored_uncompressed(tmp_path: Path) -> None:
    photo = jpeg()
    path, _stats = export_to(tmp_path, "yolo", HEADER, [item("p.jpg", 64, 48, image=opener(photo))])
    with zipfile.ZipFile(path) as archive:
        assert archive.read("images/train/p.jpg") == photo
        assert archive.getinfo("images/train/p.jpg").compress_type == zipfile.ZIP_STORED
        assert archive.getinfo("data.yaml").compress_type == zipfile.ZIP_DEFLATED


def test_without_val_split_val_points_at_the_training_images(tmp_path: Path) -> None:
    path, _stats = export_to(tmp_path, "yolo", HEADER, [item("a.png")])
    with zipfile.ZipFile(path) as archive:
        data = yaml.safe_load(archive.read("data.yaml"))
    assert data["val"] == "images/train" and "test" not in data


def test_detection_writes_polygon_bounding_boxes_and_skips_points(tmp_path: Path) -> None:
    shapes = [
        Shape.polygon([(10, 10), (50, 20), (30, 70)], label=DENT),
        Shape(ShapeType.POINTS, ((5, 5),), SCRATCH),
    ]
    path, stats = export_to(tmp_path, "yolo", HEADER, [item(shapes=shapes)])
    assert stats.skipped_shapes == 1
    with load("yolo", path) as dataset:
        (shape,) = dataset.items[0].shapes
        assert shape.type is ShapeType.BOX
        assert shape.points == ((10, 10), (50, 70))


def test_segmentation_writes_boxes_as_four_corners(tmp_path: Path) -> None:
    path, _stats = export_to(
        tmp_path, "yolo_seg", HEADER, [item(shapes=[Shape.box(10, 8, 30, 40, label=SCRATCH)])]
    )
    with zipfile.ZipFile(path) as archive:
        assert archive.read("labels/train/a.txt") == b"0 0.1 0.1 0.3 0.1 0.3 0.5 0.1 0.5\n"


def test_export_without_images_still_writes_every_label_file(tmp_path: Path) -> None:
    items = [item("a.png"), item("b.png")]
    path, stats = export_to(tmp_path, "yolo", HEADER, items, include_images=False)
    assert stats.images == 0
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == [
            "data.yaml",
            "labels/train/a.txt",
            "labels/train/b.txt",
        ]


def test_shapes_are_clipped_to_the_image_on_export(tmp_path: Path) -> None:
    # Stored shapes may lie up to half a pixel outside (geometry.EDGE_TOLERANCE).
    path, _stats = export_to(
        tmp_path, "yolo", HEADER, [item(shapes=[Shape.box(-0.5, 0, 100.5, 80, label=SCRATCH)])]
    )
    with zipfile.ZipFile(path) as archive:
        assert archive.read("labels/train/a.txt") == b"0 0.5 0.5 1 1\n"


def test_imports_cvat_yolo_1_1_layout_with_obj_names(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "cvat-yolo.zip",
        {
            "obj.names": "scratch\ndent\n",
            "obj.data": "classes = 2\n",
            "obj_train_data/a.png": png(100, 80),
            "obj_train_data/a.txt": "1 0.5 0.5 0.2 0.25\n",
        },
    )
    with load("yolo", path) as dataset:
        assert dataset.labels == ["scratch", "dent"]
        (entry,) = dataset.items
        assert (entry.file_name, entry.split) == ("a.png", "train")
        assert entry.shapes[0].label == 1
        assert entry.shapes[0].points == ((40, 30), (60, 50))


def test_import_reads_names_as_a_mapping_and_roboflow_folders(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "roboflow.zip",
        {
            "export/data.yaml": "names:\n  0: scratch\n  1: dent\ntrain: ../train/images\nval: ../valid/images\n",
            "export/valid/images/a.png": png(100, 80),
            "export/valid/labels/a.txt": "0 0.5 0.5 0.5 0.5\n",
        },
    )
    with load("yolo", path) as dataset:
        (entry,) = dataset.items
        assert (entry.file_name, entry.split, len(entry.shapes)) == ("a.png", "val", 1)


@pytest.mark.parametrize(
    ("image", "size", "points"),
    [
        (jpeg(100, 50, orientation=6), (50, 100), ((12.5, 25), (37.5, 75))),
        # A damaged EXIF orientation is ignored, as on upload (images.upright_size).
        (damaged_exif_png(100, 50), (100, 50), ((25, 12.5), (75, 37.5))),
    ],
    ids=["rotated", "damaged-exif"],
)
def test_import_takes_the_upright_size_of_exif_rotated_photos(
    tmp_path: Path, image: bytes, size: tuple[int, int], points: tuple[tuple[float, float], ...]
) -> None:
    path = write_zip(
        tmp_path / "rotated.zip",
        {
            "data.yaml": "names: [scratch]\n",
            "images/train/r.jpg": image,
            "labels/train/r.txt": "0 0.5 0.5 0.5 0.5\n",
        },
    )
    with load("yolo", path) as dataset:
        (entry,) = dataset.items
        assert (entry.width, entry.height) == size
        assert entry.shapes[0].points == points


def test_slightly_outside_coordinates_are_clipped_on_import(tmp_path: Path) -> None:
    # 1.005 x 100 px = 100.5: within the 1 px import tolerance, so moved onto the border.
    path = write_zip(
        tmp_path / "edge.zip",
        {
            "data.yaml": "names: [scratch]\n",
            "images/train/a.png": png(100, 80),
            "labels/train/a.txt": "0 0.9025 0.5 0.205 0.5\n",
        },
    )
    with load("yolo", path) as dataset:
        (x1, _y1), (x2, _y2) = dataset.items[0].shapes[0].points
        assert x2 == 100 and abs(x1 - 80) < 1e-9


def test_exporting_to_a_stream_that_cannot_seek(tmp_path: Path) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, chunk: bytes) -> int:  # type: ignore[override]
            self.data += chunk
            return len(chunk)

    pipe = Pipe()
    stats = export("yolo", HEADER, iter([item(shapes=[Shape.box(1, 1, 9, 9, label=DENT)])]), pipe)
    assert stats.bytes == len(pipe.data)
    (tmp_path / "piped.zip").write_bytes(bytes(pipe.data))
    with load("yolo", tmp_path / "piped.zip") as dataset:
        assert len(dataset.items[0].shapes) == 1


def test_with_images_small_label_files_are_stored_and_large_ones_deflated_alike(
    tmp_path: Path,
) -> None:
    # With the images, a label file under STORE_TEXT_BELOW bytes is stored (deflating it saves a
    # few dozen bytes and costs zlib's set-up per member); a larger one is deflated. Either reads
    # back the same.
    many = [Shape.box(1 + k, 2, 30 + k, 40, label=SCRATCH) for k in range(40)]
    items = [item("small.png", shapes=many[:1]), item("large.png", shapes=many)]
    path, _stats = export_to(tmp_path, "yolo", HEADER, items)
    with zipfile.ZipFile(path) as archive:
        small, large = (
            archive.getinfo("labels/train/small.txt"),
            archive.getinfo("labels/train/large.txt"),
        )
        assert small.file_size < STORE_TEXT_BELOW <= large.file_size
        assert small.compress_type == zipfile.ZIP_STORED
        assert large.compress_type == zipfile.ZIP_DEFLATED
        assert archive.read(small.filename) == b"0 0.155 0.2625 0.29 0.475\n"
        lines = archive.read(large.filename).decode().splitlines()
        assert len(lines) == 40 and lines[39] == "0 0.545 0.2625 0.29 0.475"
        assert archive.testzip() is None
    # Without the images the label files are the archive: every one is deflated, as before.
    (tmp_path / "bare").mkdir()
    bare, _stats = export_to(tmp_path / "bare", "yolo", HEADER, items, include_images=False)
    with zipfile.ZipFile(bare) as archive:
        assert archive.getinfo("labels/train/small.txt").compress_type == zipfile.ZIP_DEFLATED
        assert archive.read("labels/train/small.txt") == b"0 0.155 0.2625 0.29 0.475\n"
