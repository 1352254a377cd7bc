"""Background work of the labeling app (registered with the job runner on start-up): removing a
deleted project's tasks and files, then the project."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from defectlab.jobs.kinds import JobKind, register
from defectlab.jobs.models import Job
from defectlab.jobs.runner import Progress
from defectlab.labeling.models import Project, Task
from defectlab.labeling.services import PROJECT_DELETION, delete_tasks

CHUNK = 500  # tasks removed per transaction


def run_project_deletion(job: Job, progress: Progress) -> dict[str, Any]:
    """Remove the project's tasks CHUNK at a time (each chunk with its files, counters kept),
    then the project. Idempotent: a second run finds fewer tasks, or none and no project."""
    project = Project.all_objects.filter(pk=job.params.get("project")).first()
    if project is None:
        return {"deleted": job.params.get("name", "")}
    tasks = Task.objects.filter(project=project)
    progress.total(tasks.count())
    while ids := list(tasks.order_by("id").values_list("id", flat=True)[:CHUNK]):
        progress.step(delete_tasks(project, ids))
    project.delete()
    return {"deleted": project.name}


register(JobKind(PROJECT_DELETION, _("Project deletion"), run_project_deletion))
