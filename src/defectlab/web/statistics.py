"""The project statistics page: the numbers of ``insight.statistics`` as charts
(``defectlab.charts``), each with its table, filtered like the task table, with a CSV download
carrying the same filters."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from defectlab import charts
from defectlab.charts import Series
from defectlab.errors import DefectLabError
from defectlab.insight import statistics as stats
from defectlab.labeling.models import Project, TaskStatus
from defectlab.tenancy.viewsets import acting_user
from defectlab.web.access import scoped_or_404
from defectlab.web.taskfilter import task_filter_context

# Activity charts show at most this many people (the most active); the CSV has everyone.
PEOPLE_SHOWN = 12


@login_required
def project_statistics(request: HttpRequest, pk: int) -> HttpResponse:
    project = scoped_or_404(Project.objects.select_related("organization"), request, pk=pk)
    try:
        chosen = stats.statistics_filter_from(request.GET, acting_user(request), project)
        found = stats.statistics(project, chosen)
    except DefectLabError as refusal:
        messages.error(request, refusal.message)
        return redirect("project_statistics", project.pk)
    query = request.GET.copy()
    query["start"], query["end"] = chosen.start.isoformat(), chosen.end.isoformat()
    query.pop("format", None)
    status = query.get("status", "")
    names = dict(TaskStatus.choices)
    # Several statuses (``status=new,rejected``, as the task table's links send): kept as one
    # choice of the select, named by them all.
    several = (
        {"value": status, "label": ", ".join(str(names.get(v, v)) for v in status.split(","))}
        if "," in status
        else None
    )
    return render(
        request,
        "web/statistics.html",
        {
            "project": project,
            "found": found,
            "charts": task_charts(found),
            "activity_charts": activity_charts(found),
            **task_filter_context(project, query),
            "csv_query": query.urlencode(),
            "several_statuses": several,
            "current_organization_id": project.organization_id,
        },
    )


def task_charts(found: stats.Statistics) -> list[charts.Chart]:
    """The task parts: status, classes, tags, sizes, shapes per image."""
    names = dict(TaskStatus.choices)
    classes = [row.name for row in found.classes]
    colors = [row.color for row in found.classes]
    edges = [10**edge for edge in found.size_edges]
    return [
        charts.bars(
            _("Tasks per status"),
            [str(names[status]) for status in found.statuses],
            [Series(_("Tasks"), list(found.statuses.values()))],
            category_label=_("Status"),
            chart_id="chart-status",
        ),
        charts.bars(
            _("Images and shapes per class"),
            classes,
            [
                Series(_("Images"), [row.images for row in found.classes]),
                Series(_("Shapes"), [row.shapes for row in found.classes]),
            ],
            category_label=_("Class"),
            chart_id="chart-classes",
        ),
        charts.bars(
            _("Images per tag"),
            list(found.tags),
            [Series(_("Images"), list(found.tags.values()))],
            category_label=_("Tag"),
            chart_id="chart-tags",
        ),
        charts.histogram(
            _("Shape size per class (box area / image area)"),
            edges,
            [
                Series(name, row.sizes, color)
                for name, row, color in zip(classes, found.classes, colors, strict=True)
            ],
            x_label=_("Relative area"),
            value_label=_("Shapes"),
            chart_id="chart-sizes",
        ),
        charts.columns(
            _("Shapes per image"),
            stats.shapes_bin_names(),
            [Series(_("Images"), found.shapes_per_image)],
            category_label=_("Shapes"),
            value_label=_("Images"),
            chart_id="chart-shapes-per-image",
        ),
    ]


def activity_charts(found: stats.Statistics) -> list[charts.Chart]:
    """The activity parts of the chosen days: throughput per person and day, rejection rates."""
    chosen = found.filter
    days = [
        chosen.start + timedelta(days=offset)
        for offset in range((chosen.end - chosen.start).days + 1)
    ]
    day_names = [day.isoformat() for day in days]
    names = {row.person: row.name for row in found.throughput}

    def per_day(field: str) -> list[Series]:
        """One series per person who did any of it (the most active ``PEOPLE_SHOWN``)."""
        cells = {(row.day, row.person): getattr(row, field) for row in found.throughput}
        totals: dict[int, int] = {}
        for (_day, person), number in cells.items():
            totals[person] = totals.get(person, 0) + number
        shown = sorted((p for p in totals if totals[p]), key=lambda p: (-totals[p], p))
        top, rest = shown[:PEOPLE_SHOWN], shown[PEOPLE_SHOWN:]
        series = [
            Series(names[person], [cells.get((day, person), 0) for day in days]) for person in top
        ]
        if rest:
            series.append(
                Series(
                    _("Others"),
                    [sum(cells.get((day, person), 0) for person in rest) for day in days],
                )
            )
        return series

    return [
        charts.columns(
            _("Tasks submitted per day"),
            day_names,
            per_day("submitted"),
            stacked=True,
            category_label=_("Day"),
            value_label=_("Tasks"),
            chart_id="chart-submitted",
        ),
        charts.columns(
            _("Reviews given per day"),
            day_names,
            per_day("reviews"),
            stacked=True,
            category_label=_("Day"),
            value_label=_("Reviews"),
            chart_id="chart-reviews",
        ),
        _rejections(
            _("Review rejection rate per class"), _("Class"), found.rejections_by_class, "class"
        ),
        _rejections(
            _("Review rejection rate per annotator"),
            _("Annotator"),
            most_judged(found.rejections_by_person),
            "person",
        ),
    ]


def most_judged(rows: list[stats.Rejections]) -> list[stats.Rejections]:
    """The ``PEOPLE_SHOWN`` people with the most verdicts on their work, then everyone else as
    one row, "Others" (the table and the CSV keep everyone)."""
    ranked = sorted(rows, key=lambda row: (-(row.approved + row.rejected), row.key))
    top, rest = ranked[:PEOPLE_SHOWN], ranked[PEOPLE_SHOWN:]
    if rest:
        approved = sum(row.approved for row in rest)
        top.append(stats.Rejections(0, _("Others"), approved, sum(row.rejected for row in rest)))
    return top


def _rejections(title: str, label: str, rows: list[stats.Rejections], key: str) -> charts.Chart:
    judged = [row for row in rows if row.rate is not None]
    return charts.bars(
        title,
        [row.name for row in judged],
        [Series(_("Rejected"), [row.rate or 0.0 for row in judged])],
        percent=True,
        category_label=label,
        chart_id=f"chart-rejections-{key}",
    )
