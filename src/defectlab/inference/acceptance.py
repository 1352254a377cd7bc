"""How people took a registry version's proposals: per class, how many they kept, moved or
deleted when they submitted, and the acceptance rate (kept / decided).

A version's predictions are the Prediction rows whose ``source`` is ``version:<pk>``. What
became of each of their shapes is in the fates kept with the task's *current* annotation
version (labeling.proposals): a later save replaces the earlier word, a save that said nothing
about proposals carried the earlier fates over.

What is counted:

- Only tasks that were submitted (submitted, approved or rejected), and of those only the ones
  whose current annotation version holds at least one fate for this version's prediction on
  the task: a task submitted by a script that never spoke of proposals, or whose prediction was
  made after it was submitted, says nothing about the model and is left out (pre-annotating
  again replaces an undecided prediction by a new one and keeps a decided one as it was).
- In such a task every shape of the prediction counts: ``accepted`` is kept, ``changed`` is
  moved, ``dropped`` is deleted, and a proposal with no fate was still undecided when the task
  was submitted. The canvas leaves an undecided proposal out of the submitted shapes, so it is
  counted as deleted too; ``left_out`` says how many of the deleted ones were never decided.
- The acceptance rate is kept / (kept + moved + deleted), overall and per class; None when
  nothing was counted.
- A class is the project label's name (the same name in two projects is one class). A proposal
  whose label was deleted since counts in one bucket with no name (``name`` None).

Two queries: the version's predictions joined with their task's current annotation version (its
fates), and the labels' names; the counting is Python over the JSON. Measured (a throwaway run,
not a test): 10,000 submitted tasks with one 3-shape prediction of the version each, beside as
many predictions of another source, take about 0.1 s on SQLite and 0.2 s on PostgreSQL. The
predictions are found by the partial index on ``source`` (imported ones have none)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, FilteredRelation, Q

from defectlab.inference.models import ModelVersion
from defectlab.labeling.models import Label, Prediction, TaskStatus

# Tasks whose current annotation was submitted (a rejected one keeps its submitted word until
# it is saved again).
SUBMITTED = (TaskStatus.SUBMITTED, TaskStatus.APPROVED, TaskStatus.REJECTED)
KIND = {"accepted": "kept", "changed": "moved", "dropped": "deleted"}


@dataclass
class Counts:
    """Kept, moved and deleted proposals (``left_out``: deleted ones never decided)."""

    kept: int = 0
    moved: int = 0
    deleted: int = 0
    left_out: int = 0

    @property
    def proposals(self) -> int:
        return self.kept + self.moved + self.deleted

    @property
    def rate(self) -> float | None:
        """kept / (kept + moved + deleted); None when nothing was counted."""
        return self.kept / self.proposals if self.proposals else None

    @property
    def percent(self) -> float | None:
        """The rate in percent, for pages."""
        return None if self.rate is None else 100 * self.rate

    def add(self, kind: str) -> None:
        if kind == "left_out":
            self.deleted += 1
            self.left_out += 1
        else:
            setattr(self, kind, getattr(self, kind) + 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "proposals": self.proposals,
            "kept": self.kept,
            "moved": self.moved,
            "deleted": self.deleted,
            "left_out": self.left_out,
            "rate": self.rate,
        }


@dataclass
class ClassAcceptance(Counts):
    """One class's counts; ``name`` None for proposals whose label was deleted."""

    name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **super().as_dict()}


@dataclass
class Acceptance(Counts):
    """A version's counts over ``tasks`` submitted tasks, and per class (most proposals first,
    the deleted labels' bucket last)."""

    tasks: int = 0
    classes: list[ClassAcceptance] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            **super().as_dict(),
            "classes": [row.as_dict() for row in self.classes],
        }


def acceptance(version: ModelVersion) -> Acceptance:
    """How the version's proposals were taken (see the module's notes)."""
    return acceptance_by_source(version.organization_id, [version.source])[version.source]


def acceptance_of_versions(versions: Iterable[ModelVersion]) -> dict[int, Acceptance]:
    """``acceptance`` of each version (by its pk), in one query per organization."""
    by_organization: dict[int, list[ModelVersion]] = {}
    for version in versions:
        by_organization.setdefault(version.organization_id, []).append(version)
    found: dict[int, Acceptance] = {}
    for organization_id, rows in by_organization.items():
        counted = acceptance_by_source(organization_id, [row.source for row in rows])
        found.update({row.pk: counted[row.source] for row in rows})
    return found


def acceptance_by_source(organization_id: int, sources: list[str]) -> dict[str, Acceptance]:
    """The counts of the organization's predictions of each source (an Acceptance for every
    source asked, empty when none counted)."""
    rows = (
        Prediction.objects.annotate(
            current=FilteredRelation(
                "task__annotation__versions",
                condition=Q(task__annotation__versions__version=F("task__annotation__version")),
            )
        )
        .filter(
            organization_id=organization_id,
            source__in=sources,
            task__status__in=SUBMITTED,
            current__isnull=False,
        )
        .order_by()
        .values_list("id", "source", "task__project_id", "shapes", "current__proposal_fates")
    )
    # (source, project, label id) → counts, while the label names are not known yet.
    tallies: dict[tuple[str, int, Any], Counts] = {}
    tasks = dict.fromkeys(sources, 0)
    projects: set[int] = set()
    for prediction_id, source, project_id, shapes, fates in rows.iterator(chunk_size=2000):
        decided = {
            fate["index"]: fate["fate"]
            for fate in fates or []
            if isinstance(fate, dict) and fate.get("prediction") == prediction_id
        }
        if not decided:
            continue  # nothing was said about this prediction: not counted (module notes)
        tasks[source] += 1
        projects.add(project_id)
        for index, shape in enumerate(shapes or []):
            label = shape.get("label") if isinstance(shape, dict) else None
            counts = tallies.setdefault((source, project_id, label), Counts())
            counts.add(KIND.get(decided.get(index, ""), "left_out"))
    names = {
        (project_id, label_id): name
        for project_id, label_id, name in Label.objects.filter(
            organization_id=organization_id, project_id__in=sorted(projects)
        ).values_list("project_id", "pk", "name")
    }
    found = {source: Acceptance(tasks=tasks[source]) for source in sources}
    by_class: dict[tuple[str, str | None], ClassAcceptance] = {}
    for (source, project_id, label), counts in tallies.items():
        name = names.get((project_id, label))
        row = by_class.setdefault((source, name), ClassAcceptance(name=name))
        total = found[source]
        for bucket in (row, total):
            bucket.kept += counts.kept
            bucket.moved += counts.moved
            bucket.deleted += counts.deleted
            bucket.left_out += counts.left_out
    for (source, _name), row in by_class.items():
        found[source].classes.append(row)
    for total in found.values():
        total.classes.sort(key=lambda row: (row.name is None, -row.proposals, row.name or ""))
    return found
