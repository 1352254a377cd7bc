"""The audit trail's vocabulary and where a request came from.

Every audit row's ``action`` is a member of :class:`AuditAction` — one name per action, whether
it was done through the API, a page or the ``defectlab`` command. Services write the row (they
know the actor); the address and browser of the request being served come from
:func:`request_origin`, which :class:`~defectlab.tenancy.middleware.AuditOriginMiddleware` sets
for each request (the command line has none).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum

from django.http import HttpRequest


class AuditAction(StrEnum):
    LOGIN = "login"
    LOGIN_FAILED = "login.failed"
    LOGIN_THROTTLED = "login.throttled"
    LOGOUT = "logout"
    PASSWORD_CHANGED = "password.changed"
    API_TOKEN_CREATED = "api_token.created"
    ORGANIZATION_CREATED = "organization.created"
    ORGANIZATION_UPDATED = "organization.updated"
    MEMBER_ROLE_CHANGED = "member.role_changed"
    MEMBER_REMOVED = "member.removed"
    INVITE_CREATED = "invite.created"
    INVITE_ACCEPTED = "invite.accepted"
    INVITE_REVOKED = "invite.revoked"
    ALLOWLIST_ADDED = "allowlist.added"
    ALLOWLIST_REMOVED = "allowlist.removed"
    PROJECT_CREATED = "project.created"
    PROJECT_UPDATED = "project.updated"
    PROJECT_DELETED = "project.deleted"
    PROJECT_EXPORT_STARTED = "project.export_started"
    PROJECT_DATASET_IMPORT_STARTED = "project.dataset_import_started"
    LABEL_CREATED = "label.created"
    LABEL_UPDATED = "label.updated"
    LABEL_DELETED = "label.deleted"
    TASKS_UPLOADED = "tasks.uploaded"
    TASKS_IMPORTED = "tasks.imported"
    TASKS_URL_IMPORT_STARTED = "tasks.url_import_started"
    TASKS_ASSIGNED = "tasks.assigned"
    TASK_DELETED = "task.deleted"
    TASK_SUBMITTED = "task.submitted"
    TASK_APPROVED = "task.approved"
    TASK_REJECTED = "task.rejected"
    ISSUE_OPENED = "issue.opened"
    ISSUE_RESOLVED = "issue.resolved"
    ISSUE_REOPENED = "issue.reopened"
    ANNOTATION_FITTED = "annotation.fitted"
    JOB_CANCELLED = "job.cancelled"
    JOB_RETRIED = "job.retried"
    STORAGE_CREATED = "storage.created"
    STORAGE_UPDATED = "storage.updated"
    STORAGE_DELETED = "storage.deleted"
    STORAGE_SYNC_STARTED = "storage.sync_started"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_UPDATED = "webhook.updated"
    WEBHOOK_DELETED = "webhook.deleted"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"
    WEBHOOK_REDELIVERED = "webhook.redelivered"
    MODEL_CREATED = "model.created"
    MODEL_VERSION_UPLOADED = "model.version_uploaded"
    MODEL_VERSION_CHECKED = "model.version_checked"
    MODEL_VERSION_UPDATED = "model.version_updated"
    MODEL_ALIAS_MOVED = "model.alias_moved"
    MODEL_ALIAS_DELETED = "model.alias_deleted"
    MODEL_SENSITIVITY_CHANGED = "model.sensitivity_changed"
    PROJECT_MODEL_CHANGED = "project.model_changed"
    PREANNOTATION_STARTED = "project.preannotation_started"
    EVALUATION_STARTED = "project.evaluation_started"
    EVALUATION_DELETED = "evaluation.deleted"
    BACKEND_CREATED = "backend.created"
    BACKEND_UPDATED = "backend.updated"
    BACKEND_DELETED = "backend.deleted"
    SERVICE_KEY_CREATED = "service_key.created"
    SERVICE_KEY_REVOKED = "service_key.revoked"
    QUOTA_UPDATED = "quota.updated"


_origin: ContextVar[HttpRequest | None] = ContextVar("audit_origin", default=None)


def request_origin() -> HttpRequest | None:
    """The request being served in this context, if any (None in jobs and on the command line)."""
    return _origin.get()


@contextmanager
def serving(request: HttpRequest) -> Iterator[None]:
    token = _origin.set(request)
    try:
        yield
    finally:
        _origin.reset(token)
