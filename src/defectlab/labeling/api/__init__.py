"""REST API for projects, labels, tasks, annotations, predictions and reviews, one module per
noun: ``projects`` (with ``assignments``: who works on which task), ``labels``, ``tasks`` (with review issues); their serializers in ``serializers``."""

from defectlab.labeling.api.labels import LabelViewSet
from defectlab.labeling.api.projects import ProjectViewSet
from defectlab.labeling.api.serializers import TaskSerializer, task_rows
from defectlab.labeling.api.tasks import IssueViewSet, TaskViewSet

__all__ = [
    "IssueViewSet",
    "LabelViewSet",
    "ProjectViewSet",
    "TaskSerializer",
    "TaskViewSet",
    "task_rows",
]
