"""Lists typed as text split the same way with ASCII and Chinese punctuation."""

from __future__ import annotations

import pytest

from defectlab.textlists import has_name_separator, split_items, split_named_list


@pytest.mark.parametrize(
    "text",
    [
        "轻微，一般，严重",
        "轻微、一般、严重",
        "轻微；一般；严重",
        "轻微,一般,严重",
        "轻微;一般;严重",
        "轻微，一般, 严重",
        "轻微、一般;严重",
        "轻微\n一般\r\n严重",
        "  轻微 ，  一般、 严重  ",
    ],
)
def test_every_separator_ascii_or_chinese_splits_a_list(text: str) -> None:
    assert split_items(text) == ["轻微", "一般", "严重"]


def test_empty_items_and_repeats_are_dropped_in_the_order_first_typed() -> None:
    assert split_items("，,major、、 ;minor；major， ") == ["major", "minor"]
    assert split_items("") == []
    assert split_items(" ，、；, ") == []


def test_spaces_inside_an_item_are_kept() -> None:
    assert split_items("hairline crack, deep  scratch") == ["hairline crack", "deep  scratch"]


@pytest.mark.parametrize(
    "text",
    ["严重程度：轻微，一般，严重", "严重程度: 轻微, 一般, 严重", " 严重程度 ：轻微、一般；严重 "],
)
def test_a_name_is_set_off_by_either_colon(text: str) -> None:
    assert split_named_list(text) == ("严重程度", ["轻微", "一般", "严重"])


def test_only_the_first_colon_sets_off_the_name_and_no_colon_means_no_list() -> None:
    assert split_named_list("time: 10:30, 11:00") == ("time", ["10:30", "11:00"])
    assert split_named_list("严重程度") == ("严重程度", [])
    assert split_named_list("严重程度：") == ("严重程度", [])
    assert has_name_separator("a：b") and has_name_separator("a:b")
    assert not has_name_separator("a，b")
