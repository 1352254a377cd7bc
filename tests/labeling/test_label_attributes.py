"""A class's attributes as the API and the services store them: trimmed, repeats kept once,
Chinese text as sent, and a refusal that names the attribute it is about."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.http import QueryDict

from defectlab.errors import Invalid
from defectlab.labeling.attributes import clean_label_attributes
from defectlab.tenancy.models import Role
from defectlab.web.forms import AttributeRow, posted_attributes
from tests.conftest import Tenant, client_for

SEVERITY = {"name": "严重程度", "options": ["轻微", "一般", "严重"], "default": "一般"}


def test_the_api_stores_chinese_attributes_as_sent(tenant: Tenant) -> None:
    client = client_for(tenant.user(Role.MANAGER))
    created = client.post(
        f"/api/projects/{tenant.project.pk}/labels/",
        {"name": "裂纹", "attributes": [SEVERITY]},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["attributes"] == [SEVERITY]
    label = created.json()["id"]
    changed = client.patch(
        f"/api/labels/{label}/",
        {"attributes": [{"name": " 严重程度 ", "options": [" 轻微", "轻微", "严重 "]}]},
        format="json",
    )
    assert changed.json()["attributes"] == [
        {"name": "严重程度", "options": ["轻微", "严重"], "default": "轻微"}
    ]


def test_an_api_refusal_names_the_attribute(tenant: Tenant) -> None:
    client = client_for(tenant.user(Role.MANAGER))
    refused = client.post(
        f"/api/projects/{tenant.project.pk}/labels/",
        {"name": "裂纹", "attributes": [SEVERITY, {"name": "side", "options": [" ", ""]}]},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["details"] == {"field": "attributes", "attribute": 1}


@pytest.mark.parametrize(
    ("value", "index"),
    [
        ([{"name": "a", "options": []}], 0),
        ([{"name": " ", "options": ["x"]}], 0),
        ([{"name": "a", "options": ["x"]}, {"name": "b", "options": ["x"], "default": "y"}], 1),
        ([{"name": "a", "options": ["x"]}, {"name": "a ", "options": ["y"]}], 1),
        ([{"name": "a", "options": "x, y"}], 0),
    ],
)
def test_refusals_say_which_attribute(value: list[Any], index: int) -> None:
    with pytest.raises(Invalid) as refused:
        clean_label_attributes(value)
    assert refused.value.details == {"field": "attributes", "attribute": index}


def test_an_empty_default_is_the_first_option() -> None:
    cleaned = clean_label_attributes([{"name": "a", "options": ["x", "y"], "default": ""}])
    assert cleaned == [{"name": "a", "options": ["x", "y"], "default": "x"}]


def test_editor_rows_are_read_in_number_order_and_blank_rows_skipped() -> None:
    posted = QueryDict(
        urlencode(
            {
                "attr-10-name": ["side"],
                "attr-10-pending": ["top；bottom"],
                "attr-2-name": ["严重程度"],
                "attr-2-option": ["轻微", "一般", ""],
                "attr-2-pending": ["严重，轻微"],
                "attr-2-default": ["一般"],
                "attr-5-name": [" "],
                "attr-5-pending": [""],
            },
            doseq=True,
        )
    )
    assert posted_attributes(posted) == [
        SEVERITY,
        {"name": "side", "options": ["top", "bottom"], "default": ""},
    ]


def test_a_name_typed_the_old_way_is_split_only_when_no_options_were_given() -> None:
    assert AttributeRow("严重程度：轻微，一般").to_attribute()["options"] == ["轻微", "一般"]
    assert AttributeRow("time: 10:30", ["x"]).to_attribute() == {
        "name": "time: 10:30",
        "options": ["x"],
        "default": "",
    }
    assert AttributeRow(" ", [], " ，").is_blank() is False
    assert AttributeRow("", [], "  ").is_blank() is True
