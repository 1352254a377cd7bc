"""The task filter's fields (``web/_task_filter_fields.html``), shared by the task table's
form (the project page) and the statistics page's: what they choose from and what is chosen."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from defectlab.labeling.models import Project, TaskStatus
from defectlab.tenancy.models import Membership


def task_filter_context(project: Project, query: QueryDict) -> dict[str, Any]:
    """The context the filter fields read: ``query`` (the chosen values), the statuses, the
    project's classes and the organization's members (with their users, one query)."""
    return {
        "query": query,
        "statuses": TaskStatus.choices,
        "labels": project.labels.all(),
        "members": Membership.objects.filter(
            organization_id=project.organization_id
        ).select_related("user"),
    }
