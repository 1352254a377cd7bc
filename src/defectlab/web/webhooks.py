"""The organization's webhooks page: addresses subscribed to events, each with its delivery log
(event, time, status code, attempts, duration) and "send again"; a test ping; a new secret
(shown once, on the page that made it)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from defectlab.errors import DefectLabError, NotFound
from defectlab.hooks import services
from defectlab.hooks.models import SUBSCRIBABLE, Delivery, Event, Webhook
from defectlab.labeling.models import Project
from defectlab.tenancy.models import Organization
from defectlab.tenancy.roles import Can
from defectlab.tenancy.viewsets import acting_user
from defectlab.web.access import role_allows, scoped_or_404

LOG_ROWS = 20  # deliveries shown per webhook (the API pages through all of them)


@login_required
@require_http_methods(["GET", "POST"])
def webhooks_page(request: HttpRequest, pk: int) -> HttpResponse:
    organization = scoped_or_404(Organization.objects.all(), request, pk=pk)
    if not role_allows(request, organization.pk, Can.MANAGE_ORGANIZATION):
        return redirect("organization", organization.pk)
    shown_secret: dict[str, Any] | None = None
    if request.method == "POST":
        try:
            shown_secret = _act(request, organization)
        except DefectLabError as refusal:
            messages.error(request, refusal.message)
        if shown_secret is None:
            return redirect("webhooks", organization.pk)
    hooks = list(
        Webhook.objects.filter(organization=organization)
        .select_related("project", "created_by")
        .order_by("id")
    )
    for hook in hooks:
        hook.log = list(Delivery.objects.filter(webhook=hook).order_by("-id")[:LOG_ROWS])  # type: ignore[attr-defined]
        hook.event_names = [Event(event).label for event in hook.events if event in Event.values]  # type: ignore[attr-defined]
    return render(
        request,
        "web/webhooks.html",
        {
            "organization": organization,
            "hooks": hooks,
            "events": [(event.value, event.label) for event in SUBSCRIBABLE],
            "projects": Project.objects.filter(organization=organization).order_by("name"),
            "shown_secret": shown_secret,
            "current_organization_id": organization.pk,
        },
    )


def _act(request: HttpRequest, organization: Organization) -> dict[str, Any] | None:
    """Do what the form asked; a new secret to show once, or None."""
    user = acting_user(request)
    action = request.POST.get("action")
    if action == "add":
        made, secret = services.create_webhook(
            organization,
            user,
            url=request.POST.get("url", ""),
            events=request.POST.getlist("events"),
            project=request.POST.get("project") or None,
            note=request.POST.get("note", ""),
        )
        messages.success(request, _("The webhook was added."))
        return {"hook": made, "secret": secret}
    hook = Webhook.objects.filter(
        organization=organization, pk=request.POST.get("hook") or 0
    ).first()
    if hook is None:
        raise NotFound(_("Not found."))
    if action == "redeliver":
        delivery = Delivery.objects.filter(
            webhook=hook, pk=request.POST.get("delivery") or 0
        ).first()
        if delivery is None:
            raise NotFound(_("Not found."))
        services.redeliver(delivery, user)
        messages.success(request, _("The delivery will be sent again."))
    elif action == "ping":
        services.ping(hook, user)
        messages.success(request, _("A test ping is on its way."))
    elif action in ("on", "off"):
        services.update_webhook(hook, user, active=action == "on")
    elif action == "secret":
        return {"hook": hook, "secret": services.rotate_secret(hook, user)}
    elif action == "delete":
        services.delete_webhook(hook, user)
        messages.success(request, _("The webhook was removed."))
    return None
