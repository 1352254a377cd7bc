"""Deleting asks first: dismissing the question keeps what was there."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from defectlab.labeling.models import Label
from defectlab.tenancy.models import Role
from tests.e2e.pages import log_in, tenant_with_images


def test_deleting_a_class_asks_and_cancel_keeps_it(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    spare = Label.objects.create(
        organization=tenant.organization, project=tenant.project, name="burr", color="#00aa00"
    )
    log_in(page, tenant.user(Role.OWNER).email)
    page.goto(f"/projects/{tenant.project.pk}/settings/")
    delete = page.locator(f"form#label-{spare.pk} button[value=delete_label]")
    questions: list[str] = []

    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    delete.click()
    page.wait_for_timeout(300)
    assert questions == ["Delete the class burr?"]
    assert Label.objects.filter(pk=spare.pk).exists()

    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        delete.click()
    expect(page.locator(f"form#label-{spare.pk}")).to_have_count(0)
    assert not Label.objects.filter(pk=spare.pk).exists()
