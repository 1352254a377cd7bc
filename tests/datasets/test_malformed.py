"""Every importer refuses a malformed file with one DatasetError naming the file and the line
or entry at fault, and returns nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from defectlab.datasets import DatasetError, load
from tests.datasets.support import png, write_zip

YAML = "names: [scratch, dent]\n"


def refused(
    tmp_path: Path, fmt: str, members: dict[str, Any], match: str | None = None
) -> DatasetError:
    path = write_zip(tmp_path / f"{fmt}.zip", members)
    with pytest.raises(DatasetError, match=match) as caught:
        load(fmt, path)
    return caught.value


def yolo(label_text: str) -> dict[str, Any]:
    return {
        "data.yaml": YAML,
        "images/train/a.png": png(100, 80),
        "labels/train/a.txt": label_text,
    }


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("0 0.5 0.5 0.2", "this one has 4 values"),
        ("0 0.5 0.5 0.2 0.2 0.1", "this one has 6 values"),
        ("2 0.5 0.5 0.2 0.2", "Class 2 does not exist; the classes are 0 to 1"),
        ("-1 0.5 0.5 0.2 0.2", "Class -1 does not exist"),
        ("0.5 0.5 0.5 0.2 0.2", "A whole number was expected"),
        ("0 0.5 nan 0.2 0.2", "“nan” is not a number"),
        ("0 0.5 inf 0.2 0.2", "“inf” is not a number"),
        ("0 0.5 1e999 0.2 0.2", "finite number"),
        ("0 0.5 abc 0.2 0.2", "“abc” is not a number"),
        ("0 0.5 1_0 0.2 0.2", "“1_0” is not a number"),
        ("0 0.5 0.5 0 0.2", "no area"),
        ("0 1.5 0.5 0.2 0.2", "is outside the 100 by 80 image"),
        ("1 0.1 0.1 0.2 0.2 0.3 0.3", "vertices lie on one line"),
        ("1 0.1 0.1 0.5 0.1 0.1 0.5 0.5 0.5", "crosses or touches itself"),
    ],
)
def test_yolo_names_the_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    error = refused(tmp_path, "yolo", yolo(f"0 0.5 0.5 0.2 0.2\n\n{line}\n"), problem)
    assert error.where == "labels/train/a.txt line 3"
    assert str(error).startswith("labels/train/a.txt line 3: ")


def test_yolo_label_file_without_image(tmp_path: Path) -> None:
    error = refused(tmp_path, "yolo", {**yolo(""), "labels/train/b.txt": "0 0.5 0.5 0.2 0.2\n"})
    assert error.where == "labels/train/b.txt"


def test_yolo_data_yaml_problems(tmp_path: Path) -> None:
    assert refused(tmp_path, "yolo", {**yolo(""), "data.yaml": "names: [a, a]\n"}).where == (
        "data.yaml: names[1]"
    )
    assert refused(tmp_path, "yolo", {**yolo(""), "data.yaml": "train: x\n"}).where == "data.yaml"
    assert refused(tmp_path, "yolo", {**yolo(""), "data.yaml": "names: [a\n  b: ]: c\n"}).where == (
        "data.yaml line 2"
    )
    members = yolo("")
    del members["data.yaml"]
    assert "classes.txt" in str(refused(tmp_path, "yolo", members))


def test_yolo_unreadable_image(tmp_path: Path) -> None:
    error = refused(tmp_path, "yolo", {**yolo(""), "images/train/a.png": b"not a png"})
    assert error.where == "images/train/a.png"


def coco(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "categories": [{"id": 1, "name": "scratch"}],
        "images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 80}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10]},
        ],
    }
    for key, value in changes.items():
        if key == "second":
            data["annotations"][1].update(value)
        else:
            data[key] = value
    return {"annotations/instances_default.json": json.dumps(data)}


@pytest.mark.parametrize(
    ("second", "problem"),
    [
        ({"image_id": 7}, "refers to image 7, which is not in “images”"),
        ({"image_id": "1"}, 'refers to image "1"'),
        ({"category_id": 3}, "refers to category 3"),
        ({"bbox": [1, 2, 3]}, "must be \\[x, y, width, height\\]"),
        ({"bbox": [1, 2, -3, 4]}, "no area"),
        ({"bbox": [95, 2, 10, 4]}, "is outside"),
        ({"bbox": [1, "2", 3, 4]}, None),  # text numbers are accepted
        ({"segmentation": [[1, 1, 5, 5]]}, "at least 3 x, y pairs"),
        ({"segmentation": [[1, 1, 5, 5, 9, 9]]}, "vertices lie on one line"),
        ({"attributes": {"a": [1]}}, "must be text, a number or true/false"),
        ({"score": 1.5}, "score must be a number from 0 to 1"),
    ],
)
def test_coco_names_the_annotation(
    tmp_path: Path, second: dict[str, Any], problem: str | None
) -> None:
    if problem is None:
        path = write_zip(tmp_path / "ok.zip", coco(second=second))
        with load("coco", path) as dataset:
            assert len(dataset.items[0].shapes) == 2
        return
    error = refused(tmp_path, "coco", coco(second=second), problem)
    assert error.where == "annotations/instances_default.json: annotations[1]"


def test_coco_file_level_problems(tmp_path: Path) -> None:
    name = "annotations/instances_default.json"
    error = refused(tmp_path, "coco", {name: '{"images": [\n  {"id": 1,,}\n]}'})
    assert error.where == f"{name} line 2"
    error = refused(tmp_path, "coco", {name: '{"images": [], "categories": [], "x": NaN}'})
    assert error.where == name
    images = [{"id": 1, "file_name": "a", "width": 1, "height": 1}] * 2
    error = refused(tmp_path, "coco", coco(images=images), "its own id")
    assert error.where == f"{name}: images[1]"
    error = refused(tmp_path, "coco", coco(categories=[{"id": 1, "name": ""}]))
    assert error.where == f"{name}: categories[0]"
    assert refused(tmp_path, "coco", coco(images={})).where == name


def cvat(shapes: str, prologue: str = "") -> dict[str, str]:
    return {
        "annotations.xml": f"""<?xml version="1.0" encoding="utf-8"?>{prologue}
<annotations><version>1.1</version>
  <meta><task><labels><label><name>scratch</name></label></labels></task></meta>
  <image id="0" name="a.png" width="100" height="80">
    <box label="scratch" xtl="1" ytl="1" xbr="10" ybr="10"/>
    {shapes}
  </image>
</annotations>"""
    }


@pytest.mark.parametrize(
    ("shape", "where", "problem"),
    [
        ('<box label="scratch" xtl="20" ytl="1" xbr="10" ybr="10"/>', "box 2", "comes before"),
        ('<box label="scratch" xtl="1" ytl="1" xbr="10" ybr="NaN"/>', "box 2", "not a number"),
        ('<box label="scratch" xtl="1" ytl="1" xbr="10"/>', "box 2", "A number was expected"),
        ('<box label="" xtl="1" ytl="1" xbr="10" ybr="10"/>', "box 2", "non-empty"),
        ('<polygon label="scratch" points="1,1;5,5"/>', "polygon 1", "at least 3"),
        ('<polygon label="scratch" points="1,1;5;9,1"/>', "polygon 1", "x,y pairs"),
        ('<points label="scratch" points="1,1;500,5"/>', "points 1", "outside"),
    ],
)
def test_cvat_names_the_image_and_shape(
    tmp_path: Path, shape: str, where: str, problem: str
) -> None:
    error = refused(tmp_path, "cvat", cvat(shape), problem)
    assert error.where == f"annotations.xml: image 'a.png' {where}"


def test_cvat_refuses_entity_expansion_and_external_entities(tmp_path: Path) -> None:
    bomb = (
        '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    )
    error = refused(tmp_path, "cvat", cvat("<tag label='&lol3;'/>", bomb), "entity")
    assert error.where == "annotations.xml"
    external = '<!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]>'
    assert refused(tmp_path, "cvat", cvat("<tag label='&ext;'/>", external)).where == (
        "annotations.xml"
    )


def test_cvat_malformed_xml_names_the_line(tmp_path: Path) -> None:
    error = refused(tmp_path, "cvat", cvat("<box"), "not well-formed")
    assert error.where == "annotations.xml line 7"


def voc(objects: str) -> dict[str, Any]:
    return {
        "JPEGImages/a.png": png(100, 80),
        "Annotations/a.xml": (
            "<annotation><filename>a.png</filename><size><width>100</width>"
            f"<height>80</height></size>{objects}</annotation>"
        ),
    }


def obj(name: str = "scratch", box: tuple[object, ...] = (1, 1, 10, 10)) -> str:
    values = "".join(
        f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)
    )
    return f"<object><name>{name}</name><bndbox>{values}</bndbox></object>"


@pytest.mark.parametrize(
    ("second", "problem"),
    [
        (obj(box=(20, 1, 10, 10)), "comes before"),
        (obj(box=(1, 1, 10, 200)), "outside"),
        (obj(name=""), "non-empty"),
        ("<object><name>dent</name></object>", "no <bndbox>"),
    ],
)
def test_voc_names_the_object(tmp_path: Path, second: str, problem: str) -> None:
    error = refused(tmp_path, "voc", voc(obj() + second), problem)
    assert error.where == "Annotations/a.xml: object 2"


def test_voc_bad_number_names_the_coordinate(tmp_path: Path) -> None:
    error = refused(tmp_path, "voc", voc(obj(box=(1, 1, "ten", 10))), "not a number")
    assert error.where == "Annotations/a.xml: object 1 xmax"


def test_voc_refuses_entity_bomb(tmp_path: Path) -> None:
    members = voc("")
    members["Annotations/a.xml"] = (
        '<!DOCTYPE a [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><annotation>&b;</annotation>'
    )
    assert refused(tmp_path, "voc", members, "entity").where == "Annotations/a.xml"


def label_studio(result: dict[str, Any]) -> dict[str, Any]:
    good = {
        "type": "rectanglelabels",
        "original_width": 100,
        "original_height": 80,
        "value": {"x": 1, "y": 1, "width": 10, "height": 10, "rectanglelabels": ["scratch"]},
    }
    tasks = [
        {"data": {"image": "images/a.png"}, "annotations": [{"result": [good]}]},
        {"data": {"image": "images/a.png"}, "annotations": [{"result": [good, result]}]},
    ]
    return {"tasks.json": json.dumps(tasks), "images/a.png": png(100, 80)}


def region(**value: Any) -> dict[str, Any]:
    base = {"x": 1, "y": 1, "width": 10, "height": 10, "rectanglelabels": ["scratch"]}
    return {
        "type": "rectanglelabels",
        "original_width": 100,
        "original_height": 80,
        "value": {**base, **value},
    }


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        (region(rectanglelabels=[]), "has no label"),
        (region(x=150), "outside"),
        (region(width=0), "no area"),
        (region(y="a"), "not a number"),
        (region(x=10**400), "finite number"),  # an integer beyond any float
        ({**region(), "original_width": 50}, "different image sizes"),
        ({**region(), "original_width": 0}, "must be positive"),
        ({"type": "polygonlabels", "original_width": 100, "original_height": 80,
          "value": {"points": [[1, 1], [2]], "polygonlabels": ["x"]}}, "list of \\[x, y\\] pairs"),
        ({"type": "rectanglelabels"}, "with a “value” object"),
    ],
)  # fmt: skip
def test_label_studio_names_the_result(
    tmp_path: Path, result: dict[str, Any], problem: str
) -> None:
    error = refused(tmp_path, "labelstudio", label_studio(result), problem)
    assert error.where == "tasks.json: [1].annotations[0].result[1]"


def test_label_studio_task_problems(tmp_path: Path) -> None:
    assert refused(tmp_path, "labelstudio", {"tasks.json": "[1]"}).where == "tasks.json: [0]"
    error = refused(tmp_path, "labelstudio", {"tasks.json": '[{"data": {"image": 3}}]'})
    assert error.where == "tasks.json: [0]: data"
    assert refused(tmp_path, "labelstudio", {"tasks.json": '"x"'}).where == "tasks.json"


def test_classification_names_the_csv_line(tmp_path: Path) -> None:
    members = {
        "labels.csv": "file,tags,split\nOK/a.png,OK,train\nOK/b.png,OK\n",
        "OK/a.png": png(4, 4),
    }
    error = refused(tmp_path, "classification", members, "has 2 values")
    assert error.where == "labels.csv line 3"
    members["labels.csv"] = "file,tags,split\nOK/a.png,OK,later\n"
    assert refused(tmp_path, "classification", members, "split").where == "labels.csv line 2"
