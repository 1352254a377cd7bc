"""Model evaluation pages: a project's evaluations with the form that starts one, an
evaluation's report (mAP, the per-class table, precision–recall curves, the confusion matrix,
the best threshold per class, the label errors it found, each a link to the canvas on its
task), and two evaluations of a project side by side. The rules live in `defectlab.insight`;
the charts are `defectlab.charts`' SVG, each with its numbers as a table."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST

from defectlab import charts
from defectlab.errors import DefectLabError, Invalid
from defectlab.inference.models import DetectionModel, ModelAlias, VersionState
from defectlab.insight import evaluations
from defectlab.insight.findings import explain, kinds_asked, of_kinds
from defectlab.insight.models import Evaluation, EvaluationState, FindingKind
from defectlab.jobs.services import may_steer
from defectlab.labeling.models import Project
from defectlab.tenancy.roles import Can, allows
from defectlab.tenancy.services import role_in
from defectlab.tenancy.viewsets import acting_user
from defectlab.web.access import role_allows, scoped_or_404
from defectlab.web.jobs import job_row

SHOWN = 50  # evaluations listed
FINDINGS_SHOWN = 100


def _number(raw: Any) -> int | None:
    text = str(raw or "")
    return int(text) if text.isascii() and text.isdecimal() else None


@login_required
@require_http_methods(["GET", "POST"])
def project_evaluations(request: HttpRequest, pk: int) -> HttpResponse:
    project = scoped_or_404(Project.objects.select_related("organization"), request, pk=pk)
    may_start = allows(role_in(request.user, project.organization_id), Can.MANAGE_PROJECTS)
    error = ""
    if request.method == "POST":
        if not role_allows(request, project.organization_id, Can.MANAGE_PROJECTS):
            return redirect("project_evaluations", project.pk)
        try:
            evaluation = _start(request, project)
            messages.success(request, _("The evaluation has started; this page follows it."))
            return redirect("evaluation", evaluation.pk)
        except DefectLabError as refusal:
            error = refusal.message
    rows = list(
        Evaluation.objects.filter(project=project)
        .select_related("created_by", "job")
        .prefetch_related("version__aliases")
        .order_by("-id")[:SHOWN]
    )
    return render(
        request,
        "web/evaluations.html",
        {
            "project": project,
            "rows": rows,
            "done": [row for row in rows if row.state == EvaluationState.DONE],
            "may_start": may_start,
            "models": _models(project) if may_start else [],
            "error": error,
            "form": request.POST if request.method == "POST" else {},
            "approved": evaluations.approved_tasks(project).count(),
            "current_organization_id": project.organization_id,
        },
    )


def _models(project: Project) -> list[dict[str, Any]]:
    """Each model with a ready version: what the form offers (aliases first, then versions)."""
    models = DetectionModel.objects.filter(organization_id=project.organization_id).order_by("name")
    models = models.prefetch_related(
        "versions",
        Prefetch("aliases", ModelAlias.objects.select_related("version").order_by("name")),
    )
    offered = []
    for model in models:
        ready = [v for v in model.versions.all() if v.state == VersionState.READY]
        if not ready:
            continue
        runs = [
            {
                "value": f"{model.pk}:alias:{alias.name}",
                "alias": alias.name,
                "number": alias.version.number,
            }
            for alias in model.aliases.all()
        ] + [{"value": f"{model.pk}:version:{v.number}", "number": v.number} for v in ready]
        offered.append({"model": model, "runs": runs})
    return offered


def _start(request: HttpRequest, project: Project) -> Evaluation:
    model_id, _sep, rest = request.POST.get("run", "").partition(":")
    kind, _sep, name = rest.partition(":")
    model = DetectionModel.objects.filter(
        organization_id=project.organization_id, pk=_number(model_id) or 0
    ).first()
    if model is None or kind not in ("alias", "version"):
        raise Invalid(_("Choose a model and its version or alias."))
    raw_conf = request.POST.get("conf", "").strip().replace(",", ".")
    try:
        conf = float(raw_conf) if raw_conf else None
    except ValueError:
        raise Invalid(_("The confidence must be above 0 and below 1.")) from None
    return evaluations.start_evaluation(
        project,
        acting_user(request),
        model=model,
        version=_number(name) if kind == "version" else None,
        alias=name if kind == "alias" else None,
        conf=conf,
    )


@login_required
def evaluation_page(request: HttpRequest, pk: int) -> HttpResponse:
    evaluation = scoped_or_404(
        Evaluation.objects.select_related("project", "job", "created_by", "version"),
        request,
        pk=pk,
    )
    # A failed run whose job was retried is under way again (its row says so once it starts).
    job = evaluation.job
    finished = evaluation.state == EvaluationState.DONE or (
        evaluation.state == EvaluationState.FAILED and (job is None or job.finished)
    )
    if request.headers.get("HX-Request"):
        # The progress part polls; once the run ends, the whole page is loaded again.
        if finished:
            response = HttpResponse("")
            response["HX-Refresh"] = "true"
            return response
        part = _progress(request, evaluation) | {"finished": finished}
        return render(request, "web/_evaluation_progress.html", part)
    project = evaluation.project
    context: dict[str, Any] = {
        "evaluation": evaluation,
        "project": project,
        "finished": finished,
        "may_manage": allows(
            role_in(request.user, evaluation.organization_id), Can.MANAGE_PROJECTS
        ),
        "others": Evaluation.objects.filter(project=project, state=EvaluationState.DONE)
        .exclude(pk=evaluation.pk)
        .order_by("-id")[:SHOWN],
        "aliases": evaluations.aliases_now([evaluation])[evaluation.pk],
        "current_organization_id": evaluation.organization_id,
    } | _progress(request, evaluation)
    if evaluation.state == EvaluationState.DONE:
        context |= report_context(evaluation) | findings_context(evaluation, request.GET)
    return render(request, "web/evaluation.html", context)


def _progress(request: HttpRequest, evaluation: Evaluation) -> dict[str, Any]:
    job = evaluation.job
    row = job_row(job, may_steer=may_steer(request.user, job)) if job is not None else None
    return {"evaluation": evaluation, "row": row}


def report_context(evaluation: Evaluation) -> dict[str, Any]:
    """The report's numbers, table rows and charts, in the active language."""
    report = evaluation.report
    labels = [int(key) for key in report["classes"]]
    names = evaluations.label_names(evaluation.project, labels)
    rows = [
        {"label": label, "name": names[label], **report["classes"][str(label)]} for label in labels
    ]
    return {
        "report": report,
        "classes": rows,
        "curves": _curves(rows),
        "confusion": _confusion(report["confusion"], names),
        "best": _best(rows),
        "not_evaluated": not_evaluated(evaluation),
    }


def findings_context(evaluation: Evaluation, query: Any) -> dict[str, Any]:
    """A page of the findings (``?kind=`` one kind or several, as the API reads it; an unknown
    one shows all; ``?after=`` the last rank of the page before: keyset by rank, as the API),
    how many are kept and whether the run found more."""
    try:
        kinds = kinds_asked(str(query.get("kind", "")))
    except Invalid:
        kinds = []
    kind = ",".join(kinds)
    after = _number(query.get("after")) or 0
    stored = evaluation.findings.all()
    kept = stored.count()
    rows = of_kinds(stored, kinds)
    page = list(
        rows.filter(rank__gt=after).select_related("task").order_by("rank")[: FINDINGS_SHOWN + 1]
    )
    more = len(page) > FINDINGS_SHOWN
    page = page[:FINDINGS_SHOWN]
    names = evaluations.label_names(evaluation.project)
    found = max(evaluation.findings_found, kept)
    return {
        "findings": [
            {"finding": f, "kind": f.get_kind_display(), "text": explain(f, names)} for f in page
        ],
        "finding_count": rows.count(),
        "finding_kind": kind,
        "finding_kinds": FindingKind.choices,
        "findings_after": after,
        "findings_next": page[-1].rank if more and page else None,
        "findings_capped": _(
            "%(kept)s of %(found)s found are kept: those most likely label errors."
        )
        % {
            "kept": f"{kept:,}",
            "found": f"{found:,}",
        }
        if found > kept
        else "",
    }


def not_evaluated(evaluation: Evaluation) -> list[str]:
    """One line for each label left out of the report (no model class maps to it)."""
    counts = {int(k): int(v) for k, v in (evaluation.setup or {}).get("not_evaluated", {}).items()}
    names = evaluations.label_names(evaluation.project, counts)
    return [
        ngettext(
            "Not evaluated: %(name)s (%(count)d shape) — no model class maps to it.",
            "Not evaluated: %(name)s (%(count)d shapes) — no model class maps to it.",
            count,
        )
        % {"name": names[label], "count": count}
        for label, count in sorted(counts.items())
    ]


def _curves(rows: list[dict[str, Any]]) -> charts.Chart:
    lines = [
        charts.Line(row["name"], [(point[0], point[1]) for point in row["curve"]])
        for row in rows
        if row["curve"]
    ]
    return charts.lines(
        _("Precision–recall curves (IoU 0.5)"),
        lines,
        x_label=_("Recall"),
        y_label=_("Precision"),
        chart_id="evaluation-curves",
    )


def _confusion(confusion: dict[str, Any], names: dict[int, str]) -> charts.Chart:
    headings = [names.get(label, f"#{label}") for label in confusion["labels"]]
    headings.append(_("background"))
    return charts.heatmap(
        _("Confusion matrix (IoU 0.5, at the confidence threshold)"),
        headings,
        headings,
        confusion["counts"],
        row_label=_("Predicted class"),
        column_label=_("True class"),
        chart_id="evaluation-confusion",
    )


def _best(rows: list[dict[str, Any]]) -> charts.Chart:
    shown = [row for row in rows if row["best_conf"] is not None]
    return charts.bars(
        _("Best confidence threshold per class (highest F1)"),
        [row["name"] for row in shown],
        [charts.Series(_("Best confidence"), [row["best_conf"] for row in shown])],
        value_label=_("Confidence"),
        chart_id="evaluation-best",
    )


@login_required
@require_POST
def evaluation_delete(request: HttpRequest, pk: int) -> HttpResponse:
    evaluation = scoped_or_404(Evaluation.objects.select_related("job"), request, pk=pk)
    project_id = evaluation.project_id
    try:
        evaluations.delete_evaluation(evaluation, acting_user(request))
        messages.success(request, _("The evaluation was deleted."))
    except DefectLabError as refusal:
        messages.error(request, refusal.message)
        return redirect("evaluation", pk)
    return redirect("project_evaluations", project_id)


@login_required
def evaluation_compare(request: HttpRequest, pk: int) -> HttpResponse:
    project = scoped_or_404(Project.objects.select_related("organization"), request, pk=pk)
    done = Evaluation.objects.filter(project=project, state=EvaluationState.DONE)
    done = done.select_related("version").prefetch_related("version__aliases").order_by("-id")
    first = done.filter(pk=_number(request.GET.get("a")) or 0).first()
    second = done.filter(pk=_number(request.GET.get("b")) or 0).first()
    context: dict[str, Any] = {
        "project": project,
        "choices": done[:SHOWN],
        "a": first,
        "b": second,
        "current_organization_id": project.organization_id,
    }
    if first is not None and second is not None:
        compared = evaluations.compare(first, second)
        names = evaluations.label_names(project, [row.label for row in compared.classes])
        aliases = evaluations.aliases_now([first, second])
        context |= {
            "comparison": compared,
            "sides": [(first, aliases[first.pk]), (second, aliases[second.pk])],
            "overall": [
                _measure(
                    "mAP50",
                    first.report.get("map50"),
                    second.report.get("map50"),
                    compared.overall["map50"],
                ),
                _measure(
                    "mAP50-95",
                    first.report.get("map50_95"),
                    second.report.get("map50_95"),
                    compared.overall["map50_95"],
                ),
            ],
            "rows": [
                {
                    "name": names[row.label],
                    "measures": [
                        _measure(
                            title, (row.a or {}).get(key), (row.b or {}).get(key), row.delta[key]
                        )
                        for key, title in _measures()
                    ],
                }
                for row in compared.classes
            ],
            "headings": [title for _key, title in _measures()],
        }
    return render(request, "web/evaluation_compare.html", context)


def _measures() -> list[tuple[str, str]]:
    return [
        ("ap50", "AP50"),
        ("ap50_95", "AP50-95"),
        ("precision", _("Precision")),
        ("recall", _("Recall")),
        ("best_f1", _("Best F1")),
    ]


def _format(value: Any, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _measure(title: str, first: Any, second: Any, delta: float | None) -> dict[str, Any]:
    """One measure of both evaluations and the change, formatted (better: up)."""
    return {
        "title": title,
        "a": _format(first),
        "b": _format(second),
        "delta": _format(delta, signed=True),
        "trend": "" if not delta else ("up" if delta > 0 else "down"),
    }
