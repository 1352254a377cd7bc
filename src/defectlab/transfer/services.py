"""Images into a project at a person's request: uploads and imports by reference, each landing
whole or not at all and written to the audit trail as that person's (the API, the Data page and
scripts call these; URL import, dataset import, export and sync have modules of their own)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import IO, Any

from defectlab.ingest.uploads import images_from_uploads
from defectlab.labeling.models import Project, Task
from defectlab.labeling.services import create_uploaded_tasks, import_references
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import User
from defectlab.tenancy.services import record


def upload_images(
    project: Project, files: Iterable[tuple[str, IO[bytes]]], actor: User | None
) -> list[Task]:
    """Tasks for uploaded images and zip archives of them (all land, or none). The caller checks
    the actor's role."""
    tasks = create_uploaded_tasks(project, images_from_uploads(files))
    record(
        None,
        AuditAction.TASKS_UPLOADED,
        organization=project.organization_id,
        target=project,
        actor=actor,
        data={"count": len(tasks)},
    )
    return tasks


def import_by_reference(project: Project, items: Sequence[Any], actor: User | None) -> int:
    """Tasks for images kept by their address (``labeling.services.import_references``: checked
    row by row, one bad row imports nothing); how many. The caller checks the actor's role."""
    created = import_references(project, items)
    record(
        None,
        AuditAction.TASKS_IMPORTED,
        organization=project.organization_id,
        target=project,
        actor=actor,
        data={"count": created},
    )
    return created
