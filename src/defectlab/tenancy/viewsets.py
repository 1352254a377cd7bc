"""What every API viewset over tenant-owned rows shares: scoping and role checks."""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import exceptions, viewsets

from defectlab.tenancy.models import Organization, User
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import require, scoped


def organization_id_of(obj: models.Model) -> int:
    return obj.pk if isinstance(obj, Organization) else getattr(obj, "organization_id")  # noqa: B009


class TenantViewSet(viewsets.GenericViewSet):
    """A viewset over tenant-owned rows.

    Rows come only through ``scoped()`` (other organizations' IDs answer 404), and each action
    needs the capability named in ``capabilities`` (default: VIEW) in the row's organization."""

    capabilities: dict[str, Can] = {}

    def get_queryset(self) -> models.QuerySet[Any]:
        return scoped(super().get_queryset(), self.request.user)

    def capability(self) -> Can:
        return self.capabilities.get(self.action or "", Can.VIEW)

    def get_object(self) -> Any:
        obj = super().get_object()
        require(self.request.user, organization_id_of(obj), self.capability())
        return obj


def acting_user(request: Any) -> User:
    """The signed-in user behind a request (views behind IsAuthenticated always have one)."""
    user = request.user
    if not isinstance(user, User):
        raise exceptions.NotAuthenticated()
    return user
