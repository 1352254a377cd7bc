"""What every page's header needs: the organizations the signed-in person belongs to."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from defectlab.tenancy.models import Membership


def navigation(request: HttpRequest) -> dict[str, Any]:
    if not request.user.is_authenticated:
        return {}
    memberships = Membership.objects.filter(user_id=request.user.pk).select_related("organization")
    return {"nav_memberships": memberships.order_by("organization__name")}
