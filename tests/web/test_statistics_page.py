"""The statistics page: renders its charts in both languages for anyone who may see the
project, 404 for another organization, a bad date is said, and the CSV link keeps the filters."""

from __future__ import annotations

from defectlab.labeling import workflow
from defectlab.tenancy.models import Role
from tests.conftest import Tenant, box, signed_in


def test_the_page_renders_charts_and_tables_in_both_languages(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    annotator = tenant.user(Role.ANNOTATOR)
    for task in tenant.tasks:
        workflow.save_annotation(
            task, annotator, base_version=None, shapes=[box(tenant.label)], tags=["OK"], submit=True
        )
    url = f"/projects/{tenant.project.pk}/statistics/"
    english = signed_in(annotator).get(url + "?status=submitted")
    assert english.status_code == 200
    html = english.content.decode()
    assert html.count("<svg") >= 6 and "Images and shapes per class" in html
    assert "<table>" in html and "scratch" in html
    assert "format=csv&amp;status=submitted" in html
    chinese = signed_in(annotator, "zh-hans").get(url).content.decode()
    assert "各类别的图像数和形状数" in chinese and "Images and shapes per class" not in chinese
    assert signed_in(other_tenant.user(Role.OWNER)).get(url).status_code == 404
    refused = signed_in(annotator).get(url + "?start=someday", follow=True)
    assert "start must be a date" in refused.content.decode()
    project_page = signed_in(annotator).get(f"/projects/{tenant.project.pk}/").content.decode()
    assert f'href="{url}"' in project_page
