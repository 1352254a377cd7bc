"""The demo organization: a surface-inspection project of synthetic panels, with predictions."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

from defectlab.errors import Invalid
from defectlab.geometry import Shape
from defectlab.ingest.uploads import checked_image
from defectlab.labeling import services, workflow
from defectlab.labeling.models import Project
from defectlab.synthetic import defect_images
from defectlab.tenancy.models import Membership, Organization, Role, User, normalize_email
from defectlab.tenancy.services import create_organization

DEMO_ORGANIZATION = "Demo Factory"
DEMO_PROJECT = "Panel surface inspection"
SEVERITY = {"name": "severity", "options": ["minor", "major", "critical"], "default": "minor"}
LABELS = [
    {"name": "scratch", "color": "#e53935", "hotkey": "1", "attributes": [SEVERITY]},
    {"name": "dent", "color": "#1e88e5", "hotkey": "2", "attributes": [SEVERITY]},
    {"name": "stain", "color": "#fdd835", "hotkey": "3", "attributes": [SEVERITY]},
]


def create_demo(
    email: str, *, images: int = 50, progress: Callable[[int], None] | None = None
) -> Project:
    """Create (once) the demo organization owned by ``email``; later calls return it unchanged."""
    owner = User.objects.filter(email=normalize_email(email)).first()
    if owner is None:
        raise Invalid(f"There is no account {email}; run `defectlab createadmin` first.")
    existing = Project.objects.filter(
        organization__name=DEMO_ORGANIZATION,
        name=DEMO_PROJECT,
        organization__memberships__user=owner,
        organization__memberships__role=Role.OWNER,
    ).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        organization = Organization.objects.filter(
            name=DEMO_ORGANIZATION, memberships__user=owner
        ).first()
        if organization is None:
            organization = create_organization(DEMO_ORGANIZATION, owner)
        elif not Membership.objects.filter(organization=organization, user=owner).exists():
            Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
        project = services.create_project(
            organization,
            owner,
            name=DEMO_PROJECT,
            description="Brushed-steel panels from line 3. Synthetic images made on this machine.",
            instructions=(
                "Draw a box or polygon around every scratch, dent and stain; set its severity. "
                "Tag the image NG if it has any defect, OK if it has none."
            ),
            shape_types=["box", "polygon"],
            tags=[{"name": "OK", "color": "#2e7d32"}, {"name": "NG", "color": "#c62828"}],
            labels=LABELS,
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
        shapes = [
            (
                Shape.polygon(
                    defect.polygon,
                    label=label_ids[defect.kind],
                    attributes={"severity": defect.severity},
                )
                if defect.kind == "stain"
                else Shape.box(
                    *defect.box,
                    label=label_ids[defect.kind],
                    attributes={"severity": defect.severity},
                )
            ).to_dict()
            | {"score": 0.9}
            for defect in defects
        ]
        workflow.add_prediction(task, model_name="demo-synthetic", model_version="1", shapes=shapes)
    project.refresh_from_db()
    return project
