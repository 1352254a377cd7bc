"""The demo project's detector: the committed demo model (`defectlab.inference.demo`) made a
model of the demo organization, checked in the sandbox as any upload is, named by the alias
``production``, its English class names mapped to the demo's labels (named in the
installation's language), set to pre-annotate new tasks on import, and run once on the demo
panels — so the demo's proposals come from a real detector, not from the image generator.

`equip_demo` runs the two jobs (the check, the pre-annotation) here, in the calling process,
so `defectlab demo` ends with the proposals in place; their queue messages, delivered later to
a worker, find the jobs finished and do nothing."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _

from defectlab.errors import DefectLabError
from defectlab.inference import mapping, preannotation, registry
from defectlab.inference.demo import model_bytes
from defectlab.inference.models import DetectionModel, VersionState
from defectlab.jobs.models import Job, JobState
from defectlab.jobs.runner import run_job
from defectlab.labeling.demo import demo_texts
from defectlab.labeling.models import Project
from defectlab.tenancy.models import User

ALIAS = "production"


def demo_model_name() -> str:
    return _("Defect detector (demo)")


def equip_demo(
    project: Project, owner: User, *, progress: Callable[[str], None] | None = None
) -> DetectionModel:
    """Give the demo ``project`` its detector and its proposals (once: a project that has the
    model already is left as it is), named in the installation's language as the demo is."""
    with translation.override(settings.LANGUAGE_CODE):
        return _equip(project, owner, progress)


def _equip(project: Project, owner: User, progress: Callable[[str], None] | None) -> DetectionModel:
    name = demo_model_name()
    model = DetectionModel.objects.filter(
        organization_id=project.organization_id, name=name
    ).first()
    if model is not None and model.versions.exists():
        return model
    with transaction.atomic():
        if model is None:
            model = registry.create_model(
                project.organization,
                owner,
                name=name,
                description=_("Finds scratches, dents and stains on the demo's panels."),
            )
        version = registry.upload_version(
            model,
            owner,
            model_bytes(),
            file_name="defect-detector.onnx",
            notes=_("Trained on synthetic panels by scripts/train_demo_model.py."),
        )
    if progress:
        progress("check")
    _run(version.job_id)
    version.refresh_from_db()
    if version.state != VersionState.READY:
        raise DefectLabError(version.error or _("The demo model did not pass its check."))
    registry.move_alias(model, owner, ALIAS, version.number)
    texts = demo_texts(settings.LANGUAGE_CODE)
    labels = {label.name: label.pk for label in project.labels.all()}
    classes = {kind: labels.get(shown) for kind, shown in texts.classes.items()}
    mapping.save_project_model(project, model, owner, classes=classes, on_import=ALIAS)
    if progress:
        progress("preannotate")
    with transaction.atomic():
        job = preannotation.start_preannotation(project, owner, model=model, alias=ALIAS)
    _run(job.pk)
    return model


def _run(job_id: int | None) -> None:
    """Run the job here, now (see the module docstring); a failure is the job's error."""
    if job_id is None:
        return
    run_job(job_id)
    job = Job.objects.get(pk=job_id)
    if job.state != JobState.SUCCEEDED:
        raise DefectLabError(job.error or _("A demo job did not finish."))
