"""Hints and examples on the forms are in the person's language, and an example written the way
it reads there (full-width Chinese punctuation) works when typed."""

from __future__ import annotations

import re

from defectlab.labeling.models import Label
from defectlab.tenancy.models import Role
from tests.conftest import Tenant
from tests.web.test_pages import signed_in


def test_the_export_split_and_the_attribute_example_are_in_chinese(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.MANAGER), "zh-hans")
    data = client.get(f"/projects/{tenant.project.pk}/data/").content.decode()
    for split in ["训练", "验证", "测试"]:
        assert re.search(rf"<label>{split} train|<label>{split} val|<label>{split} test", data)
    assert not re.search(r"<label>(train|val|test) <input", data)
    settings_page = client.get(f"/projects/{tenant.project.pk}/settings/").content.decode()
    # The attribute editor's hint (the structured editor replaced the one-line example).
    assert "输入选项后按回车或逗号" in settings_page
    assert "severity: minor, major, critical" not in settings_page


def test_attributes_typed_with_chinese_punctuation_are_read_as_the_hint_shows(
    tenant: Tenant,
) -> None:
    client = signed_in(tenant.user(Role.MANAGER), "zh-hans")
    client.post(
        f"/projects/{tenant.project.pk}/settings/",
        {
            "action": "add_label",
            "name": "裂纹",
            "color": "#00aa00",
            "hotkey": "5",
            "attributes": "严重程度：轻微，较重，严重\n位置：正面、背面",
        },
    )
    crack = Label.objects.get(project=tenant.project, name="裂纹")
    assert crack.attributes == [
        {"name": "严重程度", "options": ["轻微", "较重", "严重"], "default": "轻微"},
        {"name": "位置", "options": ["正面", "背面"], "default": "正面"},
    ]
