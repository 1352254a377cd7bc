"""The demo organization: a surface-inspection project of synthetic panels, with predictions.

Everything a person reads in it (organization, project, instructions, classes, attributes and
their options) is in the installation's default language, ``settings.LANGUAGE_CODE``: a plant
that runs DefectLab in Chinese gets a Chinese demo."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from defectlab.errors import Invalid
from defectlab.geometry import Shape
from defectlab.ingest.uploads import checked_image
from defectlab.labeling import services, workflow
from defectlab.labeling.models import Project
from defectlab.synthetic import DEFECT_KINDS, SyntheticDefect, defect_images
from defectlab.tenancy.models import Membership, Organization, Role, User, normalize_email
from defectlab.tenancy.services import create_organization

COLORS = {"scratch": "#e53935", "dent": "#1e88e5", "stain": "#fdd835"}
SEVERITIES = ("minor", "major", "critical")


@dataclass(frozen=True)
class DemoTexts:
    """The demo's words in one language; ``classes`` and ``severities`` map the generator's
    English keys to the names shown."""

    organization: str
    project: str
    description: str
    instructions: str
    severity: str
    classes: dict[str, str]
    severities: dict[str, str]

    def labels(self) -> list[dict[str, Any]]:
        options = [self.severities[key] for key in SEVERITIES]
        attribute = {"name": self.severity, "options": options, "default": options[0]}
        return [
            {
                "name": self.classes[kind],
                "color": COLORS[kind],
                "hotkey": str(number),
                "attributes": [attribute],
            }
            for number, kind in enumerate(DEFECT_KINDS, start=1)
        ]


def demo_texts(language: str) -> DemoTexts:
    """The demo's words in ``language`` (the catalog's, English where it has none)."""
    with translation.override(language):
        return DemoTexts(
            organization=_("Demo Factory"),
            project=_("Panel surface inspection"),
            description=_(
                "Brushed-steel panels from line 3. Synthetic images made on this machine."
            ),
            instructions=_(
                "Draw a box or polygon around every scratch, dent and stain; set its severity. "
                "Tag the image NG if it has any defect, OK if it has none."
            ),
            severity=pgettext("demo attribute", "severity"),
            classes={
                "scratch": pgettext("demo class", "scratch"),
                "dent": pgettext("demo class", "dent"),
                "stain": pgettext("demo class", "stain"),
            },
            severities={
                "minor": pgettext("demo severity", "minor"),
                "major": pgettext("demo severity", "major"),
                "critical": pgettext("demo severity", "critical"),
            },
        )


def create_demo(
    email: str, *, images: int = 50, progress: Callable[[int], None] | None = None
) -> Project:
    """Create (once) the demo organization owned by ``email``; later calls return it unchanged."""
    texts = demo_texts(settings.LANGUAGE_CODE)
    owner = User.objects.filter(email=normalize_email(email)).first()
    if owner is None:
        raise Invalid(f"There is no account {email}; run `defectlab createadmin` first.")
    existing = Project.objects.filter(
        organization__name=texts.organization,
        name=texts.project,
        organization__memberships__user=owner,
        organization__memberships__role=Role.OWNER,
    ).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        organization = Organization.objects.filter(
            name=texts.organization, memberships__user=owner
        ).first()
        if organization is None:
            organization = create_organization(texts.organization, owner)
        elif not Membership.objects.filter(organization=organization, user=owner).exists():
            Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
        project = services.create_project(
            organization,
            owner,
            name=texts.project,
            description=texts.description,
            instructions=texts.instructions,
            shape_types=["box", "polygon"],
            tags=[{"name": "OK", "color": "#2e7d32"}, {"name": "NG", "color": "#c62828"}],
            labels=texts.labels(),
        )
    label_ids = {label.name: label.pk for label in project.labels.all()}
    generated = []
    incoming = []
    for index, (name, data, defects) in enumerate(defect_images(images, seed=2026)):
        incoming.append(checked_image(name, data))
        generated.append(defects)
        if progress:
            progress(index + 1)
    tasks = services.create_uploaded_tasks(project, incoming)
    # The generator knows where it drew each defect: offer those as a "model's" proposals,
    # so pre-labeling can be tried without a trained detector.
    for task, defects in zip(tasks, generated, strict=True):
        shapes = [_proposal(defect, texts, label_ids) for defect in defects]
        workflow.add_prediction(task, model_name="demo-synthetic", model_version="1", shapes=shapes)
    project.refresh_from_db()
    return project


def _proposal(
    defect: SyntheticDefect, texts: DemoTexts, label_ids: dict[str, int]
) -> dict[str, Any]:
    """One drawn defect as a proposal of the demo's class, named in the demo's language."""
    label = label_ids[texts.classes[defect.kind]]
    attributes = {texts.severity: texts.severities[defect.severity]}
    shape = (
        Shape.polygon(defect.polygon, label=label, attributes=attributes)
        if defect.kind == "stain"
        else Shape.box(*defect.box, label=label, attributes=attributes)
    )
    return shape.to_dict() | {"score": 0.9}
