"""The organization's detection service pages (admins and owners):

- ``/o/{id}/keys/`` — its API keys (name, scopes, signed only, made when and by whom, last
  used, revoked); a new key's text is shown once, on the answer to the form that made it (htmx
  swaps it into the page, so a reload does not send the form again and the key is gone);
  revoking asks first.
- ``/o/{id}/usage/`` — its quota as it stands, its use per UTC day with totals over a range,
  the billing CSV; the platform operator (a staff account) also gets a form to change the
  quota."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from defectlab.errors import DefectLabError, NotFound
from defectlab.serving import keys, quotas, usage
from defectlab.serving.models import Scope
from defectlab.tenancy.models import Organization
from defectlab.tenancy.roles import Can
from defectlab.tenancy.viewsets import acting_user
from defectlab.web.access import role_allows, scoped_or_404

RANGES = (7, 30, 90)  # the usage page's choices of days


@login_required
@require_http_methods(["GET", "POST"])
def keys_page(request: HttpRequest, pk: int) -> HttpResponse:
    organization = scoped_or_404(Organization.objects.all(), request, pk=pk)
    if not role_allows(request, organization.pk, Can.MANAGE_ORGANIZATION):
        return redirect("organization", organization.pk)
    shown: dict[str, Any] | None = None
    problem = ""
    if request.method == "POST":
        try:
            shown = _act(request, organization)
        except DefectLabError as refusal:
            problem = refusal.message
        if shown is None and not problem:
            return redirect("service_keys", organization.pk)
    return render(
        request,
        "web/service_keys.html",
        {
            "organization": organization,
            "keys": keys.keys_of(organization).select_related("created_by", "revoked_by"),
            "scopes": Scope.choices,
            "shown": shown,
            "problem": problem,
            "asked": request.POST if problem else {},
            "current_organization_id": organization.pk,
        },
    )


def _act(request: HttpRequest, organization: Organization) -> dict[str, Any] | None:
    """Do what the form asked; a new key to show once, or None."""
    user = acting_user(request)
    action = request.POST.get("action")
    if action == "create":
        made, text = keys.create_key(
            organization,
            user,
            request.POST.get("name", ""),
            request.POST.getlist("scopes"),
            signed_only=bool(request.POST.get("signed_only")),
        )
        return {"key": made, "text": text}
    if action == "revoke":
        found = keys.keys_of(organization).filter(pk=_id(request.POST.get("key"))).first()
        if found is None:
            raise NotFound(_("Not found."))
        keys.revoke_key(found, user)
        messages.success(request, _("The key “%(name)s” was revoked.") % {"name": found.name})
    return None


@login_required
@require_http_methods(["GET", "POST"])
def usage_page(request: HttpRequest, pk: int) -> HttpResponse:
    organization = scoped_or_404(Organization.objects.all(), request, pk=pk)
    if not role_allows(request, organization.pk, Can.MANAGE_ORGANIZATION):
        return redirect("organization", organization.pk)
    operator = bool(request.user.is_staff)
    if request.method == "POST":
        try:
            quotas.require_operator(acting_user(request))
            values = {
                name: request.POST.get(name, "").strip()
                for name in quotas.FIELDS
                if name in request.POST
            }
            quotas.set_quota(organization, acting_user(request), **values)
            messages.success(request, _("The quota was saved."))
        except DefectLabError as refusal:
            messages.error(request, refusal.message)
        return redirect(request.get_full_path())
    try:
        days = int(request.GET.get("days") or usage.DEFAULT_DAYS)
        span = usage.span_of(days=days)
    except (ValueError, DefectLabError):
        days, span = usage.DEFAULT_DAYS, usage.span_of()
    found = usage.usage_of(organization.pk, span)
    return render(
        request,
        "web/usage.html",
        {
            "organization": organization,
            "limits": quotas.limits_of(organization.pk),
            "span": span,
            "days": days,
            "ranges": RANGES,
            "rows": list(reversed(found.rows)),  # the newest day first
            "totals": found.totals,
            "operator": operator,
            "current_organization_id": organization.pk,
        },
    )


def _id(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
