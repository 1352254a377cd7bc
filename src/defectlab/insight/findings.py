"""Label errors as people see them: a finding explained in one line, and the highlights the
canvas draws when it is opened from a finding (``?finding=<id>`` on the task's page)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from defectlab.errors import Invalid
from defectlab.insight.models import Finding, FindingKind
from defectlab.labeling.models import Label, Task
from defectlab.tenancy.roles import Can, allows
from defectlab.tenancy.services import role_in


def _name(names: dict[int, str], label: int | None) -> str:
    if label is None:
        return ""
    return names.get(label, f"#{label}")


def explain(finding: Finding, names: dict[int, str]) -> str:
    """One translated line saying what the model and the annotation disagree on."""
    values = {
        "truth": _name(names, finding.truth_label),
        "predicted": _name(names, finding.predicted_label),
        "score": f"{finding.predicted_score or finding.score:.2f}",
        "iou": f"{finding.iou or 0.0:.2f}",
    }
    if finding.kind == FindingKind.EXTRA:
        return (
            _(
                "The model finds a %(predicted)s here (confidence %(score)s) that the annotation "
                "does not have."
            )
            % values
        )
    if finding.kind == FindingKind.WRONG_CLASS:
        return (
            _("Annotated as %(truth)s; the model says %(predicted)s (confidence %(score)s).")
            % values
        )
    if finding.kind == FindingKind.LOOSE_BOX:
        return (
            _(
                "The model's %(predicted)s box overlaps this %(truth)s only by IoU %(iou)s: the "
                "shape may be loose."
            )
            % values
        )
    if finding.kind == FindingKind.DUPLICATE:
        return (
            _(
                "This %(truth)s seems to be labeled twice: another %(truth)s lies on the same "
                "defect, which the model finds once."
            )
            % values
        )
    return _("The annotation has a %(truth)s here that the model does not find.") % values


def kinds_asked(raw: str) -> list[str]:
    """The finding kinds a ``kind`` query names: one (``extra``), several comma-separated
    (``extra,missing``), or none (empty: every kind). An unknown kind is refused (Invalid,
    naming the known ones). The report page and the findings API both read ``?kind=`` so."""
    asked = list(dict.fromkeys(value.strip() for value in raw.split(",") if value.strip()))
    unknown = [value for value in asked if value not in FindingKind.values]
    if unknown:
        raise Invalid(
            _("Unknown kind of finding: %(kind)s. The kinds are %(kinds)s.")
            % {"kind": unknown[0], "kinds": ", ".join(FindingKind.values)},
            details={"kinds": list(FindingKind.values)},
        )
    return asked


def of_kinds(rows: QuerySet[Finding], kinds: list[str]) -> QuerySet[Finding]:
    """``rows`` of the ``kinds`` (all of them when none is named)."""
    return rows.filter(kind__in=kinds) if kinds else rows


def label_names_of(task_project_id: int) -> dict[int, str]:
    return dict(Label.objects.filter(project_id=task_project_id).values_list("id", "name"))


def highlights(task: Task, finding_id: Any, user: Any) -> list[dict[str, Any]]:
    """What the canvas highlights for finding ``finding_id`` on ``task`` (the page's
    ``?finding=``): its box, kind, explanation and the annotation shape it is about. A finding
    of another task or organization, one the user may not see, or an id that is no number
    gives none (and says nothing of why)."""
    try:
        number = int(str(finding_id))
    except (TypeError, ValueError):
        return []
    if number <= 0 or not allows(role_in(user, task.organization_id), Can.VIEW):
        return []
    finding = Finding.objects.filter(
        pk=number, task_id=task.pk, organization_id=task.organization_id
    ).first()
    if finding is None:
        return []
    # A shape the model does not see is shown where it was drawn; the others where the model
    # sees something.
    if finding.kind in (FindingKind.MISSING, FindingKind.DUPLICATE):
        box = finding.truth_box or finding.predicted_box
    else:
        box = finding.predicted_box or finding.truth_box
    if not box:
        return []
    return [
        {
            "box": [float(value) for value in box],
            "kind": finding.kind,
            "text": explain(finding, label_names_of(task.project_id)),
            # An "extra" is about what the annotation lacks: the nearest shape is not at fault.
            "shape": "" if finding.kind == FindingKind.EXTRA else finding.truth_shape or "",
        }
    ]
