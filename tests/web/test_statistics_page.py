"""The statistics page: renders its charts in both languages for anyone who may see the
project, 404 for another organization, a bad date is said, and the CSV link keeps the filters."""

from __future__ import annotations

from django.urls import reverse
from django.utils import translation

from defectlab.insight import statistics as stats
from defectlab.labeling import workflow
from defectlab.labeling.activity import credit
from defectlab.tenancy.models import Role, User
from defectlab.web.statistics import PEOPLE_SHOWN, activity_charts, most_judged
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


def test_several_statuses_the_csv_link_the_activity_hint_and_the_people_shown(
    tenant: Tenant,
) -> None:
    annotator = tenant.user(Role.ANNOTATOR)
    url = f"/projects/{tenant.project.pk}/statistics/"
    html = signed_in(annotator).get(url + "?status=new,rejected").content.decode()
    assert '<option value="new,rejected" selected>New, Rejected</option>' in html
    csv_url = reverse("project-statistics-statistics", args=[tenant.project.pk])
    assert f'href="{csv_url}?format=csv&amp;' in html
    assert "the status, annotated and predicted filters do not" in html
    chinese = signed_in(annotator, "zh-hans").get(url).content.decode()
    assert "状态、已标注和已预测筛选不适用" in chinese
    # More people than the charts show: the most active, then everyone else as "Others".
    task = tenant.tasks[0]
    people = [
        User.objects.create_user(f"p{index}@x.test", "a-long-password-1", name=f"P{index:02d}")
        for index in range(PEOPLE_SHOWN + 2)
    ]
    for index, person in enumerate(people):
        credit(task, person.pk, submitted=index + 1, approved=index + 1)
    found = stats.statistics(tenant.project)
    with translation.override("en"):
        submitted, _reviews, _by_class, by_person = activity_charts(found)
        shown = most_judged(found.rejections_by_person)
    assert len(shown) == PEOPLE_SHOWN + 1 and shown[-1].name == "Others"
    assert (shown[0].name, shown[-1].approved) == ("P13", 1 + 2)
    assert "Others" in submitted.svg and "P00" not in submitted.svg and "P13" in submitted.svg
    assert "Others" in by_person.svg and "P01" not in by_person.svg
    assert len(found.throughput) == PEOPLE_SHOWN + 2  # the data (and CSV) keep everyone
