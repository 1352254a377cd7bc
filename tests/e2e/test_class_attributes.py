"""A manager gives a class an attribute in the settings page's editor, typing with Chinese
punctuation, and annotators pick among its options on the canvas."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from defectlab.labeling.models import Label
from defectlab.tenancy.models import Role
from tests.e2e.pages import draw_box, log_in, open_workspace, tenant_with_images


def test_options_typed_with_chinese_commas_reach_the_canvas_attribute_picker(
    page: Any, new_page: Any
) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    dent = Label.objects.get(project=tenant.project, name="dent")
    log_in(page, tenant.user(Role.MANAGER).email)
    page.goto(f"/projects/{tenant.project.pk}/settings/")

    editor = page.locator(f"tr:has(input[name=label][value='{dent.pk}']) + tr .attr-editor")
    row = editor.locator("[data-attr-row]").first
    row.locator("input.attr-name").fill("严重程度")
    row.locator("input.attr-pending").click()
    page.keyboard.type("轻微，一般，严重")
    page.keyboard.press("Enter")
    expect(row.locator(".attr-chip-text")).to_have_text(["轻微", "一般", "严重"])
    expect(row.locator("input.attr-pending")).to_have_value("")
    row.locator("[data-attr-default]").select_option("一般")
    row.locator(".attr-chip", has_text="严重").locator("button").click()  # × removes a chip
    expect(row.locator(".attr-chip-text")).to_have_text(["轻微", "一般"])
    row.locator("input.attr-pending").type("严重、")  # a separator makes the chip too
    expect(row.locator(".attr-chip-text")).to_have_text(["轻微", "一般", "严重"])
    page.locator(f"#label-{dent.pk} button[value=update_label]").click()
    expect(page.locator(".message.success")).to_be_visible()

    dent.refresh_from_db()
    assert dent.attributes == [
        {"name": "严重程度", "options": ["轻微", "一般", "严重"], "default": "一般"}
    ]
    shown = page.locator(f"tr:has(input[name=label][value='{dent.pk}']) + tr .attr-chip-text")
    expect(shown).to_have_text(["轻微", "一般", "严重"])

    annotator = new_page()
    log_in(annotator, tenant.user(Role.ANNOTATOR).email)
    open_workspace(annotator, f"/tasks/{tenant.tasks[0].pk}/annotate/")
    annotator.keyboard.press("2")  # dent's hotkey
    draw_box(annotator, 100, 80, 260, 200)
    picker = annotator.locator(".dl-attribute", has_text="严重程度")
    expect(picker.locator(".dl-option")).to_have_text(["轻微", "一般", "严重"])
    expect(picker.locator(".dl-option[aria-checked=true]")).to_have_text("一般")
