"""The demo organization: a surface-inspection project of synthetic panels (its detector and
proposals come from `defectlab.inference.demodetector`).

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
from defectlab.ingest.uploads import checked_image
from defectlab.labeling import services
from defectlab.labeling.models import Project
from defectlab.synthetic import DEFECT_KINDS, defect_images
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
    incoming = []
    for index, (name, data, _defects) in enumerate(defect_images(images, seed=2026)):
        incoming.append(checked_image(name, data))
        if progress:
            progress(index + 1)
    services.create_uploaded_tasks(project, incoming)
    project.refresh_from_db()
    return project
