"""What an import may hold: the count limit is on images (so an export within it imports back in
every format), image sizes an annotation file declares are held to the pixel limit, the zip-bomb
check covers the archive as a whole, and a COCO segmentation of no known kind is a warning."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from defectlab.datasets import FORMATS, DatasetError, Limits, load
from defectlab.geometry import Shape
from tests.datasets.support import HEADER, export_to, item, write_zip

LOADABLE = [name for name, fmt in FORMATS.items() if fmt.loader is not None]
HUGE = 2_000_000_000  # 2e9 × 2e9 pixels, declared by a file whose image is not in the archive


@pytest.mark.parametrize("fmt", LOADABLE)
def test_an_export_of_as_many_images_as_the_limit_imports_back(tmp_path: Path, fmt: str) -> None:
    # The limit counts images, not files: YOLO and VOC write a second file for every image.
    count = 6
    items = [
        item(
            f"p{index}.png",
            shapes=[Shape.box(1, 1, 9, 9, label=11)],
            tags=["NG"],
            split="train",
        )
        for index in range(count)
    ]
    path, _stats = export_to(tmp_path, fmt, HEADER, items)
    with zipfile.ZipFile(path) as archive:
        assert len(archive.namelist()) > count  # more files than images in every format
    with load(fmt, path, limits=Limits(max_images=count)) as dataset:
        assert len(dataset.items) == count
    more, _stats = export_to(tmp_path, fmt, HEADER, [*items, item("p9.png", tags=["OK"])])
    with pytest.raises(DatasetError, match=f"holds {count + 1} images; the limit is {count}"):
        load(fmt, more, limits=Limits(max_images=count))


def test_the_default_limit_admits_ten_thousand_images_with_their_labels(tmp_path: Path) -> None:
    # The layout of a YOLO export of 10,000 images (the check is on the archive's directory,
    # before any member is read, so empty members do).
    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("data.yaml", "names: [scratch]\n")
        for index in range(10_000):
            archive.writestr(f"images/train/{index:05d}.png", b"")
            archive.writestr(f"labels/train/{index:05d}.txt", b"")
    from defectlab.datasets.archive import open_source
    from defectlab.transfer.datasetimport import limits

    open_source(path, limits()).close()
    open_source(path, Limits()).close()


def test_many_small_members_that_unpack_far_beyond_their_size_are_a_bomb(
    tmp_path: Path,
) -> None:
    # Each member is under the 1 MB below which members are not checked one by one.
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.yaml", "names: [scratch]\n")
        for index in range(12):
            archive.writestr(f"padding/{index:04d}.bin", b"\0" * (512 * 1024))
    with pytest.raises(DatasetError, match="archive is compressed suspiciously well"):
        load("yolo", path)


def declaring(fmt: str, width: int, height: int) -> dict[str, Any]:
    """An annotation file declaring a `width` × `height` image that is not in the archive."""
    if fmt == "coco":
        data = {
            "categories": [{"id": 1, "name": "scratch"}],
            "images": [
                {
                    "id": 1,
                    "file_name": "https://cameras.example/a.jpg",
                    "width": width,
                    "height": height,
                }
            ],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]}],
        }
        return {"annotations/instances_default.json": json.dumps(data)}
    if fmt == "voc":
        return {
            "Annotations/a.xml": "<annotation><filename>a.jpg</filename><size>"
            f"<width>{width}</width><height>{height}</height></size></annotation>"
        }
    if fmt == "cvat":
        return {
            "annotations.xml": "<annotations><version>1.1</version><meta><task><labels><label>"
            "<name>scratch</name></label></labels></task></meta>"
            f'<image id="0" name="a.jpg" width="{width}" height="{height}"/></annotations>'
        }
    result = {
        "type": "rectanglelabels",
        "original_width": width,
        "original_height": height,
        "value": {"x": 1, "y": 1, "width": 1, "height": 1, "rectanglelabels": ["scratch"]},
    }
    tasks = [
        {"data": {"image": "https://cameras.example/a.jpg"}, "annotations": [{"result": [result]}]}
    ]
    return {"tasks.json": json.dumps(tasks)}


@pytest.mark.parametrize(
    ("fmt", "where"),
    [
        ("coco", "annotations/instances_default.json: images[0]"),
        ("voc", "Annotations/a.xml: size"),
        ("cvat", "annotations.xml: image 'a.jpg'"),
        ("labelstudio", "tasks.json: [0].annotations[0].result[0]"),
    ],
)
def test_declared_image_sizes_above_the_pixel_limit_are_refused(
    tmp_path: Path, fmt: str, where: str
) -> None:
    limits = Limits(max_image_pixels=150_000_000)
    path = write_zip(tmp_path / "huge.zip", declaring(fmt, HUGE, HUGE))
    with pytest.raises(DatasetError, match="too many pixels") as caught:
        load(fmt, path, limits=limits)
    assert caught.value.where == where
    # A size within the limit is accepted as before.
    with load(fmt, write_zip(tmp_path / "fine.zip", declaring(fmt, 4000, 3000)), limits=limits):
        pass


def test_a_coco_segmentation_that_is_neither_polygons_nor_rle_is_a_warning(
    tmp_path: Path,
) -> None:
    def annotation(number: int, segmentation: Any) -> dict[str, Any]:
        return {
            "id": number,
            "image_id": 1,
            "category_id": 1,
            "bbox": [1, 1, 10, 10],
            "segmentation": segmentation,
        }

    data = {
        "categories": [{"id": 1, "name": "scratch"}],
        "images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 80}],
        "annotations": [
            annotation(1, []),  # a box without a mask: nothing to say
            annotation(2, "mask.png"),
            annotation(3, {"counts": [0, 10, 70], "size": [80, 100]}),  # RLE
            annotation(4, {"points": [1, 2]}),
            annotation(5, [[1, 1, 10, 1, 10, 10]]),  # a polygon
        ],
    }
    path = write_zip(
        tmp_path / "coco.zip", {"annotations/instances_default.json": json.dumps(data)}
    )
    with load("coco", path) as dataset:
        (entry,) = dataset.items
        assert [shape.type.value for shape in entry.shapes] == [
            "box",
            "box",
            "box",
            "box",
            "polygon",
        ]
        assert dataset.warnings == [
            "1 mask annotation was imported as its bounding box.",
            "2 annotations have a “segmentation” that is neither polygons nor RLE; their bounding "
            "boxes were imported instead: annotations/instances_default.json: annotations[1]; "
            "annotations/instances_default.json: annotations[3].",
        ]
