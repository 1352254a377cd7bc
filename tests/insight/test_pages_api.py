"""The evaluation API and pages: start, list, report, findings (paged by rank), compare,
delete (audited); roles and other organizations' ids; the report page's charts in both
languages; a finding's link opens the canvas with the highlight in its config."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from defectlab.inference.models import DetectionModel
from defectlab.insight.findings import highlights
from defectlab.insight.models import Evaluation, EvaluationState, Finding, FindingKind
from defectlab.labeling.models import Project
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import AuditEvent, Role
from defectlab.web import evaluations as pages
from tests.conftest import Tenant, client_for, make_tenant, signed_in
from tests.insight.helpers import evaluate_now

pytestmark = pytest.mark.django_db


@pytest.fixture
def done(
    approved_panels: Project,
    manager: Any,
    demo_model: DetectionModel,
    drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> Evaluation:
    evaluation = evaluate_now(
        approved_panels, manager, demo_model, drain, django_capture_on_commit_callbacks
    )
    assert evaluation.state == EvaluationState.DONE, evaluation.error
    return evaluation


def test_start_list_retrieve_findings_compare_and_delete_through_the_api(
    approved_panels: Project,
    manager: Any,
    demo_model: DetectionModel,
    drain: Any,
    django_capture_on_commit_callbacks: Any,
    tenant: Tenant,
) -> None:
    client = client_for(manager)
    url = f"/api/projects/{approved_panels.pk}/evaluations/"
    body = {"model": demo_model.pk, "alias": "production", "conf": 0.4}
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(url, body, format="json")
    assert answer.status_code == 202, answer.json()
    assert AuditEvent.objects.filter(action=AuditAction.EVALUATION_STARTED).count() == 1
    drain()
    first = answer.json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        second = client.post(url, {"model": demo_model.pk, "version": 1}, format="json").json()[
            "id"
        ]
    drain()
    listed = client.get(url).json()
    assert [row["id"] for row in listed["results"]] == [second, first]
    assert listed["next_cursor"] is None and "report" not in listed["results"][0]
    report = client.get(f"/api/evaluations/{first}/").json()
    assert (
        report["state"] == "done" and report["conf"] == 0.4 and report["aliases"] == ["production"]
    )
    assert report["report"]["map50"] is not None
    page = client.get(f"/api/evaluations/{first}/findings/").json()
    ranks = [row["rank"] for row in page["results"]]
    assert ranks == sorted(ranks) and ranks[:1] == [1]
    compared = client.get(f"/api/evaluations/{first}/compare/?with={second}").json()
    assert compared["same_ground_truth"] is True and compared["classes"]
    assert compared["same_setup"] is False and compared["setup_differences"] == ["conf"]
    assert client.get(f"/api/evaluations/{first}/compare/").status_code == 400
    # Roles: a reviewer sees but neither starts nor deletes.
    reviewer = client_for(tenant.user(Role.REVIEWER))
    assert reviewer.get(f"/api/evaluations/{first}/").status_code == 200
    assert reviewer.post(url, body, format="json").status_code == 403
    assert reviewer.delete(f"/api/evaluations/{first}/").status_code == 403
    assert client.delete(f"/api/evaluations/{first}/").status_code == 204
    assert AuditEvent.objects.filter(action=AuditAction.EVALUATION_DELETED).count() == 1
    assert not Finding.objects.filter(evaluation_id=first).exists()


def test_another_organization_sees_nothing(done: Evaluation, other_tenant: Tenant) -> None:
    stranger = client_for(other_tenant.user(Role.OWNER))
    for url in (
        f"/api/evaluations/{done.pk}/",
        f"/api/evaluations/{done.pk}/findings/",
        f"/api/evaluations/{done.pk}/compare/?with={done.pk}",
        f"/api/projects/{done.project_id}/evaluations/",
    ):
        assert stranger.get(url).status_code == 404, url
    assert stranger.delete(f"/api/evaluations/{done.pk}/").status_code == 404
    page = signed_in(other_tenant.user(Role.OWNER))
    assert page.get(f"/evaluations/{done.pk}/").status_code == 404
    finding = done.findings.order_by("rank").first()
    assert finding is not None
    assert highlights(finding.task, finding.pk, other_tenant.user(Role.OWNER)) == []
    # Comparing with another organization's evaluation: 404, not its numbers.
    mine = make_tenant("Initech")
    theirs = Evaluation.objects.create(
        organization=mine.organization,
        project=mine.project,
        model_name="m",
        version_number=1,
        conf=0.25,
        iou=0.7,
        state=EvaluationState.DONE,
        report=done.report,
    )
    owner = client_for(mine.user(Role.OWNER))
    assert owner.get(f"/api/evaluations/{theirs.pk}/compare/?with={done.pk}").status_code == 404


def test_the_findings_api_keeps_the_kinds_asked_for_page_by_page(
    done: Evaluation, tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from defectlab.insight import api

    kinds = FindingKind.values
    # Two of each kind: the run's findings, and copies of its first ranked after them.
    stored = list(Finding.objects.filter(evaluation=done).order_by("rank"))
    for rank in range(stored[-1].rank + 1, 2 * len(kinds) + 1):
        copy = Finding.objects.get(pk=stored[0].pk)
        copy.pk, copy.rank = None, rank
        copy.save()
    stored = list(Finding.objects.filter(evaluation=done).order_by("rank"))
    assert len(stored) == 2 * len(kinds)
    of_kind: dict[str, list[int]] = {kind: [] for kind in kinds}
    for index, finding in enumerate(stored):
        kind = kinds[index % len(kinds)]
        Finding.objects.filter(pk=finding.pk).update(kind=kind)
        of_kind[kind].append(finding.rank)
    monkeypatch.setattr(api, "PAGE", 1)  # every kind's findings over pages of one
    client = client_for(tenant.user(Role.ANNOTATOR))
    url = f"/api/evaluations/{done.pk}/findings/"

    def ranks(kind: str) -> list[int]:
        seen: list[int] = []
        cursor = None
        while True:
            body = client.get(url, {"kind": kind} | ({"cursor": cursor} if cursor else {})).json()
            assert len(body["results"]) <= 1
            assert not kind or {row["kind"] for row in body["results"]} <= set(kind.split(","))
            seen += [row["rank"] for row in body["results"]]
            cursor = body["next_cursor"]
            if cursor is None:
                return seen

    for kind in kinds:
        assert ranks(kind) == of_kind[kind], kind
    assert ranks("extra,missing") == sorted(of_kind["extra"] + of_kind["missing"])
    assert ranks("") == [finding.rank for finding in stored]
    refused = client.get(url, {"kind": "extra,nonsense"}, HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["message"] == (
        "Unknown kind of finding: nonsense. The kinds are "
        "extra, wrong_class, loose_box, missing, duplicate."
    )
    assert error["details"] == {"kinds": list(kinds)}
    chinese = client.get(url, {"kind": "nonsense"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert chinese.json()["error"]["message"].startswith("未知的发现类型：nonsense。")
    # Another organization's evaluation stays unseen, whatever the kind asked.
    stranger = client_for(other_tenant.user(Role.OWNER))
    for kind in ("extra", "nonsense"):
        assert stranger.get(url, {"kind": kind}).status_code == 404


def canvas_config(page: Any, url: str) -> dict[str, Any]:
    html = page.get(url).content.decode()
    found = re.search(r'<script[^>]*id="workspace-config"[^>]*>(.*?)</script>', html, re.S)
    assert found is not None
    return json.loads(found[1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_report_page_draws_its_charts_and_lists_findings(
    done: Evaluation, tenant: Tenant, language: str
) -> None:
    page = signed_in(tenant.user(Role.ANNOTATOR), language)
    html = page.get(f"/evaluations/{done.pk}/").content.decode()
    assert html.count("<svg") >= 3
    for heading in ("evaluation-classes", "chart-curves", "chart-confusion", "findings"):
        assert f'id="{heading}"' in html
    if language == "zh-hans":
        assert "混淆矩阵" in html and "背景" in html
    else:
        assert "Confusion matrix" in html and "background" in html
    link = re.search(r'class="finding-link" href="/tasks/(\d+)/annotate/\?finding=(\d+)"', html)
    assert link is not None
    [highlight] = canvas_config(page, f"/tasks/{link[1]}/annotate/?finding={link[2]}")["highlights"]
    assert highlight["kind"] in ("missing", "wrong_class", "loose_box", "extra")
    assert len(highlight["box"]) == 4 and highlight["text"]
    # A finding of another task is ignored.
    other = Finding.objects.exclude(task_id=int(link[1])).filter(evaluation=done).first()
    if other is not None:
        url = f"/tasks/{link[1]}/annotate/?finding={other.pk}"
        assert canvas_config(page, url)["highlights"] == []
    assert canvas_config(page, f"/tasks/{link[1]}/annotate/?finding=x")["highlights"] == []
    # An "extra" names no annotation shape: the nearest one is not at fault.
    extra = Finding.objects.filter(evaluation=done, kind="extra").first()
    assert extra is not None
    Finding.objects.filter(pk=extra.pk).update(truth_shape="s-near", truth_box=[0, 0, 5, 5])
    [shown] = highlights(extra.task, extra.pk, tenant.user(Role.ANNOTATOR))
    assert shown["shape"] == ""


def test_the_evaluations_page_starts_one_and_compares_two(
    approved_panels: Project,
    manager: Any,
    demo_model: DetectionModel,
    drain: Any,
    django_capture_on_commit_callbacks: Any,
    tenant: Tenant,
) -> None:
    page = signed_in(manager)
    url = f"/projects/{approved_panels.pk}/evaluations/"
    html = page.get(url).content.decode()
    assert 'id="start-evaluation"' in html
    run = f"{demo_model.pk}:alias:production"
    with django_capture_on_commit_callbacks(execute=True):
        answer = page.post(url, {"run": run, "conf": "0.3"})
    assert answer.status_code == 302
    drain()
    with django_capture_on_commit_callbacks(execute=True):
        page.post(url, {"run": f"{demo_model.pk}:version:1"})
    drain()
    a, b = Evaluation.objects.filter(project=approved_panels).order_by("id")
    assert a.conf == 0.3 and b.state == EvaluationState.DONE
    html = page.get(url).content.decode()
    assert 'id="compare-latest"' in html
    compare = page.get(f"{url}compare/?a={a.pk}&b={b.pk}").content.decode()
    assert 'id="comparison-classes"' in compare and "production" in compare
    # Another threshold: the page shows each side's setup and warns.
    assert 'id="setup-changed"' in compare and 'id="comparison-setup"' in compare
    assert 'id="setup-changed"' not in page.get(f"{url}compare/?a={a.pk}&b={a.pk}").content.decode()
    # Bad input: a clear message, no evaluation.
    html = page.post(url, {"run": "nonsense"}).content.decode()
    assert 'id="start-error"' in html
    html = page.post(url, {"run": run, "conf": "2"}).content.decode()
    assert 'id="start-error"' in html
    assert Evaluation.objects.filter(project=approved_panels).count() == 2
    # An annotator sees the list but no form, and cannot start one.
    annotator = signed_in(tenant.user(Role.ANNOTATOR))
    assert 'id="start-evaluation"' not in annotator.get(url).content.decode()
    annotator.post(url, {"run": run})
    assert Evaluation.objects.filter(project=approved_panels).count() == 2


def test_a_cancelled_evaluation_is_retried_from_its_page_and_followed_until_done(
    approved_panels: Project, manager: Any, demo_model: DetectionModel, queued: list[int],
    drain: Any, django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    from defectlab.insight import evaluations
    from defectlab.jobs.models import Job

    with django_capture_on_commit_callbacks(execute=True):
        evaluation = evaluations.start_evaluation(
            approved_panels, manager, model=demo_model, alias="production"
        )
    page = signed_in(manager)
    url = f"/evaluations/{evaluation.pk}/"
    html = page.get(url).content.decode()
    assert 'hx-get="' in html and 'id="cancel-evaluation"' in html
    with django_capture_on_commit_callbacks(execute=True):
        page.post(f"/jobs/{evaluation.job_id}/cancel/", {"next": url})
    drain()
    evaluation.refresh_from_db()
    assert evaluation.state == EvaluationState.FAILED and evaluation.error_code == "cancelled"
    html = page.get(url).content.decode()
    assert 'id="evaluation-error"' in html and 'hx-get="' not in html
    with django_capture_on_commit_callbacks(execute=True):
        assert page.post(f"/jobs/{evaluation.job_id}/retry/", {"next": url}).status_code == 302
    html = page.get(url).content.decode()
    assert 'hx-get="' in html  # queued again: the page follows it
    assert page.get(url, headers={"HX-Request": "true"}).status_code == 200
    drain()
    evaluation.refresh_from_db()
    assert evaluation.state == EvaluationState.DONE and not evaluation.error
    assert Job.objects.get(pk=evaluation.job_id).state == "succeeded"
    answer = page.get(url, headers={"HX-Request": "true"})
    assert answer["HX-Refresh"] == "true"
    assert 'id="map50"' in page.get(url).content.decode()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (
            "extra",
            "The model finds a dent here (confidence 0.91) that the annotation does not have.",
        ),
        ("missing", "The annotation has a scratch here that the model does not find."),
        ("wrong_class", "Annotated as scratch; the model says dent (confidence 0.91)."),
        ("loose_box", "The model's dent box overlaps this scratch only by IoU 0.55"),
        ("duplicate", "This scratch seems to be labeled twice"),
    ],
)
def test_each_kind_is_explained_with_its_labels(kind: str, expected: str) -> None:
    from defectlab.insight.findings import explain

    finding = Finding(
        kind=kind, score=0.5, truth_label=1, predicted_label=2, predicted_score=0.91, iou=0.55
    )
    assert explain(finding, {1: "scratch", 2: "dent"}).startswith(expected)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_report_page_pages_findings_filters_by_kind_and_says_when_capped(
    done: Evaluation, tenant: Tenant, language: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "FINDINGS_SHOWN", 1)
    stored = list(Finding.objects.filter(evaluation=done).order_by("rank"))
    assert len(stored) >= 2
    # Two kinds on the page: the second finding becomes another kind than the first.
    other = next(k for k in FindingKind.values if k != stored[0].kind)
    Finding.objects.filter(pk=stored[1].pk).update(kind=other)
    page = signed_in(tenant.user(Role.ANNOTATOR), language)
    url = f"/evaluations/{done.pk}/"

    def ranks(html: str) -> list[int]:
        return [int(r) for r in re.findall(r"<tr>\s*<td>(\d+)</td>", html)]

    html = page.get(url).content.decode()
    assert ranks(html) == [1] and 'id="findings-capped"' not in html
    assert 'id="findings-next"' in html and "after=1" in html
    second = page.get(url, {"after": 1}).content.decode()
    assert ranks(second) == [2] and 'id="findings-first"' in second
    assert ranks(page.get(url, {"kind": other}).content.decode()) == [2]
    assert ranks(page.get(url, {"kind": other, "after": 2}).content.decode()) == []
    assert ranks(page.get(url, {"kind": "nonsense"}).content.decode()) == [1]
    # Several kinds, comma-separated, as the API reads them (one rule: insight.findings).
    third = next(k for k in FindingKind.values if k not in (stored[0].kind, other))
    both = page.get(url, {"kind": f"{third},{other}"}).content.decode()
    assert ranks(both) == [2] and 'id="findings-next"' not in both
    # The run found more than it kept: the page says how many.
    Evaluation.objects.filter(pk=done.pk).update(findings_found=40000)
    html = page.get(url).content.decode()
    kept = len(stored)
    if language == "zh-hans":
        assert f"共发现 40,000 个，保留了其中最可能是标注错误的 {kept} 个" in html
    else:
        assert f"{kept} of 40,000 found are kept" in html
