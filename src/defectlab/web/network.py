"""The organization's network access page: the allowlist of company addresses that URL
imports (and storages, and everything else the guarded fetcher reaches) may use."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from defectlab.errors import DefectLabError, NotFound
from defectlab.ingest.models import AllowedNetwork
from defectlab.ingest.services import add_allowed_network, remove_allowed_network
from defectlab.tenancy import services as tenancy
from defectlab.tenancy.models import Organization
from defectlab.tenancy.roles import Can, allows
from defectlab.tenancy.viewsets import acting_user
from defectlab.web.access import scoped_or_404


@login_required
@require_http_methods(["GET", "POST"])
def network_access(request: HttpRequest, pk: int) -> HttpResponse:
    organization = scoped_or_404(Organization.objects.all(), request, pk=pk)
    if request.method == "POST":
        try:
            tenancy.require(request.user, organization.pk, Can.MANAGE_ORGANIZATION)
            _change(request, organization)
        except DefectLabError as refusal:
            messages.error(request, refusal.message)
        return redirect("network_access", organization.pk)
    role = tenancy.role_in(request.user, organization.pk)
    return render(
        request,
        "web/network.html",
        {
            "organization": organization,
            "entries": AllowedNetwork.objects.filter(organization=organization)
            .select_related("created_by")
            .order_by("value"),
            "can_change": allows(role, Can.MANAGE_ORGANIZATION),
            "current_organization_id": organization.pk,
        },
    )


def _change(request: HttpRequest, organization: Organization) -> None:
    if request.POST.get("action") == "delete":
        entry = AllowedNetwork.objects.filter(
            organization=organization, pk=request.POST.get("entry") or 0
        ).first()
        if entry is None:
            raise NotFound(_("Not found."))
        remove_allowed_network(entry, acting_user(request))
        messages.success(request, _("%(value)s was removed.") % {"value": entry.value})
        return
    entry = add_allowed_network(
        organization,
        acting_user(request),
        request.POST.get("value", ""),
        request.POST.get("note", ""),
    )
    messages.success(request, _("%(value)s is allowed now.") % {"value": entry.value})
