"""How a project uses a model of its organization (`ProjectModel`): which project label each
of the model's class names becomes, whether pre-annotation tiles its images, and which alias
pre-annotates new tasks on import — and `Proposer`, which turns the engine's detections into
the project's prediction shapes by that mapping.

A class the mapping does not name goes to the project label of the same name (case aside),
else is left out; the mapping may also say "none" (None) for a class. A polygon on a project
without polygons is proposed as its box, a box on a project of polygons only as its four
corners; the label's attributes get their defaults. Classes that become one label are one
class for NMS: of their overlapping boxes only the best is proposed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from defectlab.errors import Conflict, Invalid, NotFound
from defectlab.geometry import Shape, ShapeError
from defectlab.inference.models import DetectionModel, ProjectModel, VersionState
from defectlab.labeling.models import Label, Project
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import User
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import record, require

if TYPE_CHECKING:
    from defectlab.inference.engine import Detections


def _labels(project: Project) -> list[Label]:
    return list(Label.objects.filter(project_id=project.pk).order_by("id"))


def class_map(
    project: Project, names: Sequence[str], stored: Mapping[str, Any] | None = None
) -> dict[str, int | None]:
    """Each class name → the project label its detections become (None: none). ``stored``
    (a `ProjectModel`'s ``classes``) wins where it names a label still in the project, or
    None; other names go to the label of the same name, case aside."""
    labels = _labels(project)
    ids = {label.pk for label in labels}
    by_name = {label.name.casefold(): label.pk for label in labels}
    chosen: dict[str, int | None] = {}
    for name in names:
        if stored is not None and name in stored and (stored[name] is None or stored[name] in ids):
            chosen[name] = stored[name]
        else:
            chosen[name] = by_name.get(name.casefold())
    return chosen


def project_model(project: Project, model: DetectionModel) -> ProjectModel:
    """The project's settings for ``model`` (unsaved defaults when it has none)."""
    found = ProjectModel.objects.filter(project=project, model=model).first()
    return found or ProjectModel(
        organization_id=project.organization_id, project=project, model=model
    )


def model_names(model: DetectionModel) -> list[str]:
    """The class names of the model's newest ready version (those of its newest version while
    none is ready)."""
    versions = model.versions.order_by("-number")
    version = versions.filter(state=VersionState.READY).first() or versions.first()
    return list(version.names) if version is not None else []


def save_project_model(
    project: Project,
    model: DetectionModel,
    user: User | None,
    *,
    classes: Mapping[str, Any] | None = None,
    tile: bool | None = None,
    on_import: str | None = None,
) -> ProjectModel:
    """Change how ``project`` uses ``model`` (managers): the class → label mapping (names the
    model does not have, or labels not in the project, are refused), tiling, and the alias
    that pre-annotates new tasks on import ("" for none; one model per project at a time)."""
    if user is not None:
        require(user, project.organization_id, Can.MANAGE_PROJECTS)
    if model.organization_id != project.organization_id:
        raise NotFound(_("Not found."))
    with transaction.atomic():
        settings = ProjectModel.objects.select_for_update().filter(project=project, model=model)
        row = settings.first() or project_model(project, model)
        if classes is not None:
            row.classes = _clean_classes(project, model, classes)
        if tile is not None:
            row.tile = bool(tile)
        if on_import is not None:
            row.on_import = _clean_on_import(project, model, on_import)
        row.updated_by = user
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:  # another manager switched on another model meanwhile
            raise Conflict(_on_import_taken()) from None
        record(
            None,
            AuditAction.PROJECT_MODEL_CHANGED,
            organization=project.organization_id,
            target=project,
            actor=user,
            data={
                "model": model.pk,
                "classes": row.classes,
                "tile": row.tile,
                "on_import": row.on_import,
            },
        )
    return row


def _clean_classes(
    project: Project, model: DetectionModel, classes: Mapping[str, Any]
) -> dict[str, int | None]:
    if not isinstance(classes, Mapping):
        raise Invalid(_("The class mapping must be an object of class name → label id."))
    names = set(model_names(model))
    labels = {label.pk for label in _labels(project)}
    cleaned: dict[str, int | None] = {}
    for name, label in classes.items():
        if name not in names:
            raise Invalid(_("The model has no class named “%(name)s”.") % {"name": name})
        if label is not None and (isinstance(label, bool) or label not in labels):
            raise Invalid(
                _("Class “%(name)s”: this project has no label %(label)s.")
                % {"name": name, "label": label}
            )
        cleaned[name] = label
    return cleaned


def _on_import_taken() -> str:
    return _("Another model already pre-annotates this project's new tasks; switch it off first.")


def _clean_on_import(project: Project, model: DetectionModel, alias: str) -> str:
    alias = (alias or "").strip()
    if not alias:
        return ""
    if not model.aliases.filter(name=alias).exists():
        raise Invalid(_("The model has no alias “%(name)s”.") % {"name": alias})
    others = ProjectModel.objects.filter(project=project).exclude(model=model).exclude(on_import="")
    if others.exists():
        raise Conflict(_on_import_taken())
    return alias


class Proposer:
    """Detections as a project's prediction shapes: class index → label (see the module
    docstring), shape types the project uses, attribute defaults."""

    def __init__(self, project: Project, names: Sequence[str], classes: Mapping[str, Any]):
        mapping = class_map(project, names, classes)
        self.labels = [mapping.get(name) for name in names]
        labels = {label.pk: label for label in _labels(project)}
        self.defaults = {
            pk: {attribute["name"]: attribute["default"] for attribute in label.attributes}
            for pk, label in labels.items()
        }
        self.boxes = "box" in project.shape_types
        self.polygons = "polygon" in project.shape_types

    def shapes(
        self, found: Detections, width: int, height: int, *, iou: float
    ) -> list[dict[str, Any]]:
        """The proposals of ``found``; classes that become one label are suppressed among
        themselves first by NMS at ``iou``, the IoU the engine ran with (`Detections.merged_by`):
        two classes' boxes on one defect are proposed once."""
        proposed = []
        for shape in found.merged_by(self.labels, iou).shapes():
            label = self.labels[shape.label] if 0 <= shape.label < len(self.labels) else None
            if label is None:
                continue
            converted = self._typed(shape, label)
            if (found.width, found.height) != (width, height):
                converted = converted.clipped(width, height)
            try:
                converted.validate(width, height)
            except ShapeError:
                continue
            proposed.append(converted.to_dict())
        return proposed

    def _typed(self, shape: Shape, label: int) -> Shape:
        attributes = self.defaults.get(label, {})
        if shape.type == "polygon" and not self.polygons:
            return Shape.box(*shape.bbox(), label=label, attributes=attributes, score=shape.score)
        if shape.type == "box" and not self.boxes and self.polygons:
            (x1, y1), (x2, y2) = shape.points
            corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
            return Shape.polygon(corners, label=label, attributes=attributes, score=shape.score)
        return Shape(shape.type, shape.points, label, attributes, shape.score)
