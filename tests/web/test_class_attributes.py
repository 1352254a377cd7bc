"""The class attribute editor on the settings page: what it posts, Chinese punctuation, and a
refused form shown again exactly as typed, the error beside the field."""

from __future__ import annotations

import re

from django.test import Client

from defectlab.labeling.models import Label
from defectlab.tenancy.models import Role
from tests.conftest import Tenant

SEVERITY = {"name": "严重程度", "options": ["轻微", "一般", "严重"], "default": "轻微"}


def manager(tenant: Tenant) -> tuple[Client, str]:
    client = Client()
    client.force_login(tenant.user(Role.MANAGER))
    return client, f"/projects/{tenant.project.pk}/settings/"


def new_class(**fields: object) -> dict[str, object]:
    return {"action": "add_label", "name": "crack", "color": "#00aa00", "hotkey": "3"} | fields


def row_of(page: str, name_value: str) -> str:
    """The HTML of the class row whose name input holds ``name_value``, with its editor row."""
    start = page.rindex("<tr", 0, page.index(f'name="name" value="{name_value}"'))
    return page[start : page.index("</tr>", page.index("attributes-row", start))]


def test_options_typed_with_chinese_punctuation_become_three_options(tenant: Tenant) -> None:
    client, url = manager(tenant)
    form = new_class(**{"attr-0-name": "严重程度", "attr-0-pending": "轻微，一般，严重"})
    assert client.post(url, form).status_code == 302
    assert Label.objects.get(name="crack").attributes == [SEVERITY]


def test_chips_pending_text_and_a_chosen_default_make_one_attribute(tenant: Tenant) -> None:
    client, url = manager(tenant)
    form = new_class(
        **{
            "attr-0-name": " 严重程度 ",
            "attr-0-option": ["轻微", "一般"],
            "attr-0-pending": "一般、严重；",
            "attr-0-default": "一般",
            "attr-3-name": "side",
            "attr-3-pending": "top, bottom",
            "attr-4-name": "",
            "attr-4-pending": "",
        }
    )
    client.post(url, form)
    assert Label.objects.get(name="crack").attributes == [
        SEVERITY | {"default": "一般"},
        {"name": "side", "options": ["top", "bottom"], "default": "top"},
    ]


def test_the_old_one_line_syntax_takes_chinese_punctuation_too(tenant: Tenant) -> None:
    client, url = manager(tenant)
    client.post(url, new_class(**{"attr-0-name": "严重程度：轻微，一般，严重"}))
    assert Label.objects.get(name="crack").attributes == [SEVERITY]
    client.post(url, new_class(name="dent2", hotkey="4", attributes="严重程度：轻微，一般，严重"))
    assert Label.objects.get(name="dent2").attributes == [SEVERITY]
    client.post(url, new_class(name="dent3", hotkey="5", attributes="严重程度: 轻微，一般，严重"))
    assert Label.objects.get(name="dent3").attributes == [SEVERITY]


def test_the_page_shows_each_attribute_with_its_options_as_chips(tenant: Tenant) -> None:
    client, url = manager(tenant)
    Label.objects.filter(pk=tenant.label.pk).update(attributes=[SEVERITY | {"default": "一般"}])
    row = row_of(client.get(url).content.decode(), "scratch")
    assert 'name="attr-0-name" value="严重程度"' in row
    chips = re.findall(r'name="attr-0-option" value="([^"]*)"', row)
    assert chips == ["轻微", "一般", "严重"]
    assert '<option value="一般" selected>' in row
    assert 'name="attr-1-name" value=""' in row  # a blank row to add the next one


def test_a_refused_new_class_keeps_everything_typed_with_the_error_beside_the_hotkey(
    tenant: Tenant,
) -> None:
    client, url = manager(tenant)
    typed = new_class(
        hotkey="1",  # scratch has it
        **{
            "attr-0-name": "严重程度",
            "attr-0-option": ["轻微", "一般"],
            "attr-0-pending": "严重",
            "attr-0-default": "一般",
        },
    )
    response = client.post(url, typed)
    assert response.status_code == 200
    assert not Label.objects.filter(name="crack").exists()
    row = row_of(response.content.decode(), "crack")
    assert 'name="color" value="#00aa00"' in row
    hotkey_cell = row[row.index('name="hotkey" value="1"') :]
    assert hotkey_cell.index("Another label already uses hotkey 1.") < hotkey_cell.index("</td>")
    assert 'name="attr-0-name" value="严重程度"' in row
    assert re.findall(r'name="attr-0-option" value="([^"]*)"', row) == ["轻微", "一般"]
    assert 'name="attr-0-pending" value="严重"' in row
    assert '<option value="一般" selected>' in row


def test_a_refused_attribute_keeps_its_row_and_shows_the_error_beside_it(tenant: Tenant) -> None:
    client, url = manager(tenant)
    typed = {
        "action": "update_label",
        "label": tenant.label.pk,
        "name": "scratch",
        "color": "#e53935",
        "hotkey": "1",
        "attr-0-name": "severity",
        "attr-0-option": ["minor", "major"],
        "attr-1-name": "严重程度",
        "attr-1-pending": "",
    }
    response = client.post(url, typed)
    page = response.content.decode()
    assert response.status_code == 200
    tenant.label.refresh_from_db()
    assert [attribute["name"] for attribute in tenant.label.attributes] == ["severity"]
    row = row_of(page, "scratch")
    second = row[row.index('name="attr-1-name" value="严重程度"') :]
    message = "Each attribute needs a name and a non-empty list of options."
    assert second.index(message) < second.index("data-attr-row")  # before the next (blank) row
    assert 'name="attr-0-name" value="severity"' in row
    assert 'name="name" value="dent"' in page  # the other classes as stored


def test_a_refused_duplicate_name_points_at_the_second_attribute(tenant: Tenant) -> None:
    client, url = manager(tenant)
    typed = new_class(
        **{
            "attr-0-name": "side",
            "attr-0-pending": "top",
            "attr-1-name": "",  # a blank row in between does not shift the error
            "attr-2-name": "side",
            "attr-2-pending": "bottom",
        }
    )
    row = row_of(client.post(url, typed).content.decode(), "crack")
    second = row[row.index('name="attr-2-name"') :]
    assert "Attribute names must be unique." in second
    assert "Attribute names must be unique." not in row[: row.index('name="attr-2-name"')]


def test_a_refused_settings_form_keeps_what_was_typed(tenant: Tenant) -> None:
    client, url = manager(tenant)
    typed = {"action": "settings", "name": "Welds v2", "tags": "OK，NG、scrap", "shape_types": []}
    page = client.post(url, typed).content.decode()
    assert "Shape types must be a non-empty list" in page
    assert 'value="Welds v2"' in page and "OK，NG、scrap</textarea>" in page


def test_image_tags_split_at_chinese_commas(tenant: Tenant) -> None:
    client, url = manager(tenant)
    typed = {
        "action": "settings",
        "name": "Acme",
        "tags": "OK #2e7d32，NG、scrap",
        "shape_types": ["box"],
    }
    client.post(url, typed)
    tenant.project.refresh_from_db()
    assert [tag["name"] for tag in tenant.project.tags] == ["OK", "NG", "scrap"]
    assert tenant.project.tags[0]["color"] == "#2e7d32"
