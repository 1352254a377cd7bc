"""Format details the round trips do not pin down: conventions, other tools' variants."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from defusedxml import ElementTree

from defectlab.datasets import DatasetError, load
from defectlab.geometry import Shape, ShapeType
from tests.datasets.support import HEADER, export_to, item, png, write_zip

SCRATCH, DENT = 11, 12


# --- Pascal VOC -------------------------------------------------------------------------------


def test_voc_writes_one_based_inclusive_pixel_indexes(tmp_path: Path) -> None:
    shapes = [
        Shape.box(0, 0, 100, 80, label=SCRATCH),
        Shape.box(10.4, 10.6, 20.5, 30.2, label=DENT, attributes={"difficult": "1"}),
    ]
    path, _stats = export_to(tmp_path, "voc", HEADER, [item(shapes=shapes, split="val")])
    with zipfile.ZipFile(path) as archive:
        root = ElementTree.fromstring(archive.read("Annotations/a.xml"))
        assert archive.read("ImageSets/Main/val.txt") == b"a\n"
        assert archive.read("labelmap.txt").splitlines()[1:] == [
            b"scratch:255,0,0::",
            b"dent:0,255,0::",
        ]
    boxes = [
        [int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        for o in root.iter("object")
    ]
    assert boxes == [[1, 1, 100, 80], [11, 12, 20, 30]]
    assert [o.findtext("difficult") for o in root.iter("object")] == ["0", "1"]
    with load("voc", path) as dataset:
        whole, rounded = dataset.items[0].shapes
        assert whole.points == ((0, 0), (100, 80))
        assert rounded.points == ((10, 11), (20, 30))


def test_voc_reads_other_tools_files(tmp_path: Path) -> None:
    xml = (
        "<annotation><filename>photo.png</filename><size><width>0</width><height>0</height></size>"
        "<object><name> dent </name><difficult>1</difficult><truncated>0</truncated>"
        "<bndbox><xmin>1.5</xmin><ymin>1</ymin><xmax>50.5</xmax><ymax>40</ymax></bndbox></object>"
        "</annotation>"
    )
    path = write_zip(
        tmp_path / "voc.zip",
        {"VOC2012/Annotations/x.xml": xml, "VOC2012/JPEGImages/x.png": png(60, 40)},
    )
    with load("voc", path) as dataset:
        (entry,) = dataset.items
        assert dataset.labels == ["dent"]
        # <filename> names a file that is not there; the image with the same stem is.
        assert (entry.file_name, entry.width, entry.height) == ("x.png", 60, 40)
        assert entry.shapes[0].points == ((0.5, 0), (50.5, 40))
        assert dict(entry.shapes[0].attributes) == {"difficult": "1"}


# --- Label Studio -----------------------------------------------------------------------------


def test_label_studio_writes_percent_and_a_config(tmp_path: Path) -> None:
    entry = item(shapes=[Shape.box(10, 20, 30, 60, label=SCRATCH)], tags=["NG"], key="42")
    path, _stats = export_to(tmp_path, "labelstudio", HEADER, [entry])
    with zipfile.ZipFile(path) as archive:
        (task,) = json.loads(archive.read("tasks.json"))
        config = archive.read("label_config.xml").decode()
    assert task["id"] == 42 and task["data"] == {"image": "images/a.png"}
    box, tags = task["annotations"][0]["result"]
    assert box["value"] == {
        "x": 10,
        "y": 25,
        "width": 20,
        "height": 50,
        "rotation": 0,
        "rectanglelabels": ["scratch"],
    }
    assert (box["original_width"], box["original_height"]) == (100, 80)
    assert tags["value"] == {"choices": ["NG"]} and tags["from_name"] == "tags"
    assert '<Label value="scratch" background="#ff0000"/>' in config


def ls_task(*results: dict[str, Any], **task: Any) -> dict[str, Any]:
    return {
        "data": {"image": "/data/upload/3/ab12-photo.png"},
        "annotations": [{"result": list(results)}],
        **task,
    }


def ls_result(kind: str, value: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": kind, "original_width": 200, "original_height": 100, "value": value, **extra}


def test_label_studio_reads_rotation_keypoints_attributes_and_skips_brushes(tmp_path: Path) -> None:
    tasks = [
        ls_task(
            ls_result(
                "rectanglelabels",
                {
                    "x": 10,
                    "y": 10,
                    "width": 20,
                    "height": 20,
                    "rotation": 90,
                    "rectanglelabels": ["a"],
                },
                id="r1",
            ),
            ls_result("textarea", {"text": ["deep"]}, id="r1", from_name="depth"),
            ls_result("keypointlabels", {"x": 50, "y": 50, "keypointlabels": ["b"]}, id="k1"),
            ls_result("brushlabels", {"rle": [1, 2], "brushlabels": ["a"]}, id="b1"),
            ls_result("choices", {"choices": ["NG", "rust"]}, id="c1", from_name="class"),
        )
    ]
    path = write_zip(
        tmp_path / "ls.zip",
        {"export.json": json.dumps(tasks), "upload/ab12-photo.png": png(200, 100)},
    )
    with load("labelstudio", path) as dataset:
        (entry,) = dataset.items
        assert dataset.labels == ["a", "b"] and list(entry.tags) == ["NG", "rust"]
        rotated, point = entry.shapes
        # 40 x 20 px box turned 90° clockwise about its top-left corner (20, 10).
        assert rotated.type is ShapeType.POLYGON
        assert [(round(x, 6), round(y, 6)) for x, y in rotated.points] == [
            (20, 10),
            (20, 50),
            (0, 50),
            (0, 10),
        ]
        assert dict(rotated.attributes) == {"depth": "deep"}
        assert point.type is ShapeType.POINTS and point.points == ((100, 50),)
        assert entry.image is not None and entry.file_name == "upload/ab12-photo.png"
        assert dataset.warnings == [
            "1 region of a kind DefectLab does not support (brushlabels) was skipped."
        ]


def test_label_studio_without_images_keeps_the_reference(tmp_path: Path) -> None:
    cancelled = {
        "was_cancelled": True,
        "result": [
            ls_result(
                "rectanglelabels",
                {"x": 1, "y": 1, "width": 1, "height": 1, "rectanglelabels": ["a"]},
            )
        ],
    }
    task = ls_task(id=7)
    task["data"]["image"] = "https://cdn.example.com/lot%201/p.png?sig=1"
    task["annotations"] = [cancelled, {"result": []}]
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([task]))
    with load("labelstudio", path) as dataset:
        (entry,) = dataset.items
        assert (entry.key, entry.file_name, entry.image) == ("7", "p.png", None)
        assert entry.image_ref == "https://cdn.example.com/lot%201/p.png?sig=1"
        assert entry.shapes == [] and (entry.width, entry.height) == (0, 0)


def test_label_studio_predictions_keep_their_scores(tmp_path: Path) -> None:
    predicted = Shape.box(1, 2, 30, 40, label=DENT, score=0.875)
    path, _stats = export_to(tmp_path, "labelstudio", HEADER, [item(predictions=[predicted])])
    with load("labelstudio", path) as dataset:
        (shape,) = dataset.items[0].predictions
        assert (shape.score, shape.points, dataset.labels[shape.label]) == (
            0.875,
            ((1, 2), (30, 40)),
            "dent",
        )


# --- CVAT -------------------------------------------------------------------------------------


def test_cvat_reads_rotated_boxes_and_skips_what_it_cannot_hold(tmp_path: Path) -> None:
    xml = """<annotations><version>1.1</version>
      <meta><task><labels><label><name>a</name><type>rectangle</type></label>
        <label><name>OK</name><type>tag</type></label></labels></task></meta>
      <image id="5" name="x.png" subset="Validation" width="100" height="100">
        <box label="a" xtl="40" ytl="45" xbr="60" ybr="55" rotation="90">
          <attribute name="size">big</attribute></box>
        <polyline label="a" points="1,1;5,5"/>
        <tag label="OK"/>
      </image>
      <track id="0" label="a"><box frame="0" xtl="1" ytl="1" xbr="2" ybr="2"/></track>
    </annotations>"""
    path = write_zip(tmp_path / "cvat.zip", {"annotations.xml": xml})
    with load("cvat", path) as dataset:
        (entry,) = dataset.items
        assert (entry.key, entry.split, list(entry.tags), entry.image) == ("5", "val", ["OK"], None)
        assert dataset.labels == ["a"] and list(dataset.header.tags) == ["OK"]
        (shape,) = entry.shapes
        corners = [(round(x, 6), round(y, 6)) for x, y in shape.points]
        assert corners == [(55, 40), (55, 60), (45, 60), (45, 40)]
        assert dict(shape.attributes) == {"size": "big"}
        assert "(polyline, track)" in dataset.warnings[0]


# --- COCO -------------------------------------------------------------------------------------


def test_coco_uses_one_based_category_positions_and_skips_points(tmp_path: Path) -> None:
    shapes = [
        Shape.box(1, 1, 5, 5, label=DENT, score=0.5),
        Shape(ShapeType.POINTS, ((1, 1),), SCRATCH),
    ]
    path, stats = export_to(tmp_path, "coco", HEADER, [item(shapes=shapes)])
    assert stats.skipped_shapes == 1
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("annotations/instances_default.json"))
    assert [(c["id"], c["name"]) for c in data["categories"]] == [(1, "scratch"), (2, "dent")]
    (annotation,) = data["annotations"]
    assert annotation["category_id"] == 2 and annotation["bbox"] == [1, 1, 4, 4]
    assert annotation["area"] == 16 and annotation["score"] == 0.5


def test_coco_reads_masks_multi_part_polygons_and_roboflow_layout(tmp_path: Path) -> None:
    data = {
        "categories": [{"id": 0, "name": "defects"}, {"id": 7, "name": "pit"}],
        "images": [{"id": "i1", "file_name": "C:\\data\\b.png", "width": 50, "height": 50}],
        "annotations": [
            {"image_id": "i1", "category_id": 7, "bbox": [1, 1, 9, 9], "iscrowd": 1, "segmentation": {"counts": "abc", "size": [50, 50]}},
            {"image_id": "i1", "category_id": 7, "bbox": [0, 0, 40, 40], "segmentation": [[0, 0, 10, 0, 0, 10], [30, 30, 40, 30, 30, 40]],
             "attributes": {"occluded": False, "rotation": 0.0}},
        ],
    }  # fmt: skip
    path = write_zip(
        tmp_path / "rf.zip",
        {"train/_annotations.coco.json": json.dumps(data), "train/b.png": png(50, 50)},
    )
    with load("coco", path) as dataset:
        (entry,) = dataset.items
        assert dataset.labels == ["defects", "pit"]
        assert (entry.file_name, entry.split, entry.image is not None) == ("b.png", "train", True)
        mask, first, second = entry.shapes
        assert mask.type is ShapeType.BOX and mask.points == ((1, 1), (10, 10))
        assert first.type is second.type is ShapeType.POLYGON and second.points[0] == (30, 30)
        assert dict(first.attributes) == {"occluded": "false", "rotation": "0.0"}
        assert dataset.warnings == ["1 mask annotation was imported as its bounding box."]


# --- classification ---------------------------------------------------------------------------


def test_classification_folders_without_csv(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "c.zip",
        {"OK/a.png": png(5, 5), "rust spot/b.png": png(6, 5), "_untagged/c.png": png(5, 6)},
    )
    with load("classification", path) as dataset:
        tags = {entry.file_name: list(entry.tags) for entry in dataset.items}
        assert tags == {"a.png": ["OK"], "b.png": ["rust spot"], "c.png": []}


def test_classification_puts_each_image_once_under_its_first_tag(tmp_path: Path) -> None:
    items = [item("a.png", tags=["NG", "OK"]), item("b.png"), item("c.png", tags=["a/b"])]
    path, _stats = export_to(tmp_path, "classification", HEADER, items)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == [
            "NG/a.png",
            "_untagged/b.png",
            "a_b/c.png",
            "labels.csv",
        ]
        assert archive.read("labels.csv").decode().splitlines()[1] == "NG/a.png,NG;OK,"
    with pytest.raises(DatasetError, match="contains “;”"):
        export_to(tmp_path, "classification", HEADER, [item(tags=["a;b"])])
