"""The web's operations endpoints, `/healthz`, `/readyz` and `/metrics`, and the middleware
that counts and times every request by its route.

The middleware answers the three endpoints itself, before the rest of the middleware: they are
reached by address (a probe, Prometheus scraping a pod's IP), not by one of
DEFECTLAB_PUBLIC_URLS, so Django's host check (400 for a Host not in ALLOWED_HOSTS) must not
stand in their way; they build no URL, so an unknown Host cannot mislead them."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

from defectlab.jobs.liveness import worker_problem
from defectlab.operations import metrics

UNMATCHED = "unmatched"
STATIC = "static"


def route_of(request: HttpRequest) -> str:
    """The request's route as a label: the name of the URL pattern it matched (e.g.
    ``task-annotation``, ``web:project``), never the path as sent (ids, tokens). A response
    given before the URL was resolved (a body too large) is resolved here; static files are
    ``static``; no match at all (a 404) is ``unmatched``."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        if request.path_info.startswith(str(settings.STATIC_URL)):
            return STATIC  # served by WhiteNoise before any URL is resolved
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return UNMATCHED
    return match.view_name or match.route or UNMATCHED


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus's text format; with DEFECTLAB_METRICS_TOKEN set, only for its bearer."""
    if not metrics.allowed(request.headers.get("Authorization")):
        return HttpResponse(metrics.refusal(), status=401, headers=metrics.CHALLENGE)
    return HttpResponse(metrics.render(), content_type=metrics.CONTENT_TYPE)


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """The process can serve: its database answers, and a job worker was seen lately.

    Where `serve` runs its own worker (the embedded default), no worker means every job waits
    forever, so the process is not ready. Where workers run on their own, a missing worker is
    said in the answer but does not take the web out of service."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        problem = worker_problem()
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    if problem is None:
        return JsonResponse({"status": "ok"})
    if settings.WORKER_EMBEDDED:
        return JsonResponse({"status": "unavailable", "worker": problem}, status=503)
    return JsonResponse({"status": "ok", "worker": problem})


# The endpoints the middleware answers itself, by path, with their route names.
ENDPOINTS: dict[str, tuple[str, Callable[[HttpRequest], HttpResponse]]] = {
    "/healthz": ("healthz", healthz),
    "/readyz": ("readyz", readyz),
    "/metrics": ("metrics", metrics_view),
}


class RequestMetrics:
    """Counts and times every request (first in the middleware: its time includes the rest),
    and answers the operations endpoints (above)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        began = time.perf_counter()
        endpoint = ENDPOINTS.get(request.path_info)
        if endpoint is not None:
            route, view = endpoint
            response = view(request)
        else:
            response = self.get_response(request)
            route = route_of(request)
        metrics.observe_request(
            route, request.method or "", response.status_code, time.perf_counter() - began
        )
        return response
