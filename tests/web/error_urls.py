"""The product's addresses plus a few that fail on purpose, each as a page and under /api/: the
error tests use this as ROOT_URLCONF to reach Django's 403 and 500 handlers and its CSRF check
through a real request."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import path

import defectlab.urls

# The product's handlers (Django's plain ones where the product names none).
handler400 = getattr(defectlab.urls, "handler400", "django.views.defaults.bad_request")
handler403 = getattr(defectlab.urls, "handler403", "django.views.defaults.permission_denied")
handler404 = getattr(defectlab.urls, "handler404", "django.views.defaults.page_not_found")
handler500 = getattr(defectlab.urls, "handler500", "django.views.defaults.server_error")


def refuse(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


def accept_post(request: HttpRequest) -> HttpResponse:
    """A plain Django view: the CSRF middleware checks its POSTs (DRF's views exempt themselves)."""
    return HttpResponse("ok")


urlpatterns = [
    path("broken/refuse/", refuse),
    path("broken/crash/", crash),
    path("api/broken/refuse/", refuse),
    path("api/broken/crash/", crash),
    path("api/broken/post/", accept_post),
    *defectlab.urls.urlpatterns,
]
