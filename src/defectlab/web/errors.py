"""The pages people see when a request is refused: too many log-in attempts (429) and a form
from a stale page (CSRF). 403, 404 and 500 are Django's handlers (``defectlab.api``) rendering
the templates of the same names; all of them share ``web/error.html`` and offer a way back."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _

from defectlab.errors import Forbidden, error_response


def too_many_requests(request: HttpRequest, message: str) -> HttpResponse:
    """The 429 page for a paused log-in: the reason (how long to wait) and the way back to it."""
    context = {"message": message, "back_url": reverse("login")}
    return render(request, "429.html", context, status=429)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form refused for its CSRF token, nearly always a tab opened before the person logged in
    or out elsewhere (both change the token). The log-in form is shown again, fresh, with a word
    why; other pages say what happened and how to go back; under /api/ the API's error shape."""
    if request.path.startswith("/api/"):
        return error_response(
            Forbidden(_("The request lacks a valid CSRF token."), code="csrf_failed")
        )
    if request.path == reverse("login"):
        context = {
            "error": _("This log-in page had expired, so it was not sent. Log in again."),
            "email": request.POST.get("email", ""),
        }
        return render(request, "web/login.html", context, status=403)
    return render(request, "403_csrf.html", status=403)
