"""The web's side of the metrics: the middleware that times every request by its route, and the
`/metrics` view."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.translation import gettext as _

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


class RequestMetrics:
    """Counts and times every request (first in the middleware: its time includes the rest)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        began = time.perf_counter()
        response = self.get_response(request)
        metrics.observe_request(
            route_of(request),
            request.method or "",
            response.status_code,
            time.perf_counter() - began,
        )
        return response


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus's text format; with DEFECTLAB_METRICS_TOKEN set, only for its bearer."""
    if not metrics.allowed(request.headers.get("Authorization")):
        response = HttpResponse(_("A bearer token is needed to read the metrics."), status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.render(), content_type=metrics.CONTENT_TYPE)
