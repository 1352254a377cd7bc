"""The two checks every page starts with: the row is the caller's organization's (else 404),
and the caller's role allows what the page does (else a message and a way back)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest

from defectlab.errors import DefectLabError, NotFound
from defectlab.tenancy import services as tenancy
from defectlab.tenancy.roles import Can


def scoped_or_404(queryset: Any, request: HttpRequest, **lookup: Any) -> Any:
    try:
        return tenancy.get_scoped(queryset, request.user, **lookup)
    except NotFound:
        raise Http404 from None


def role_allows(request: HttpRequest, organization_id: int, capability: Can) -> bool:
    """True when the caller's role allows ``capability``; otherwise the refusal becomes a message."""
    try:
        tenancy.require(request.user, organization_id, capability)
    except DefectLabError as refusal:
        messages.error(request, refusal.message)
        return False
    return True
