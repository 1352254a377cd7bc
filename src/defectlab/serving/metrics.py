"""The detection service's Prometheus metrics (`/metrics`), in a registry of its own: requests,
latency, images and errors by organization and model, queue depth and run sizes by model,
loaded models and alias swaps."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)


def allowed(authorization: str | None) -> bool:
    """Whether a scrape with this Authorization header may read `/metrics`: anyone when
    DEFECTLAB_METRICS_TOKEN is empty (the proxy keeps `/metrics` inside), else only
    `Bearer <that token>` (the web and the worker ask the same, defectlab.operations.metrics)."""
    token = str(settings.METRICS_TOKEN)
    if not token:
        return True
    scheme, _sep, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


# A scrape ``allowed`` refuses is answered 401 with this header and ``refusal()``, by every role.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="metrics"'}


def refusal() -> str:
    """The text of that 401, in the active language."""
    return _("A bearer token is needed to read the metrics.") + "\n"


class Metrics:
    def __init__(self, depth: Callable[[], dict[str, int]], held: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        labels = ("organization", "model")
        self.requests = Counter(
            "defectlab_inference_requests",
            "Detection requests answered, by result code.",
            (*labels, "code"),
            registry=self.registry,
        )
        self.errors = Counter(
            "defectlab_inference_errors",
            "Detection requests answered with an error, by code.",
            (*labels, "code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "defectlab_inference_request_seconds",
            "Time from a detection request's arrival to its answer.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.images = Counter(
            "defectlab_inference_images", "Images detected on.", labels, registry=self.registry
        )
        self.batch = Histogram(
            "defectlab_inference_batch_images",
            "Images in one model run.",
            ("model",),
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.run = Histogram(
            "defectlab_inference_run_seconds",
            "Time of one model run.",
            ("model",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.swaps = Counter(
            "defectlab_inference_alias_swaps",
            "Aliases switched to a new version.",
            registry=self.registry,
        )
        self.swap_failures = Counter(
            "defectlab_inference_alias_swap_failures",
            "Moved aliases whose new version failed to load (the old one kept answering).",
            registry=self.registry,
        )
        self.registry.register(_Depth(depth, held))

    def observe_run(self, runner: Any, images: int, seconds: float) -> None:
        self.batch.labels(runner.label).observe(images)
        self.run.labels(runner.label).observe(seconds)

    def answered(
        self, organization: int | None, model: str, code: str, seconds: float, images: int
    ) -> None:
        org = str(organization or "")
        self.requests.labels(org, model, code).inc()
        self.latency.labels(org, model).observe(seconds)
        if code != "ok":
            self.errors.labels(org, model, code).inc()
        if images:
            self.images.labels(org, model).inc(images)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Depth:
    """Gauges read when scraped: images waiting per model, models loaded."""

    def __init__(self, depth: Callable[[], dict[str, int]], held: Callable[[], int]) -> None:
        self._depth = depth
        self._held = held

    def collect(self) -> Any:
        waiting = GaugeMetricFamily(
            "defectlab_inference_queue_images",
            "Images waiting to be run, by model.",
            labels=["model"],
        )
        for model, count in sorted(self._depth().items()):
            waiting.add_metric([model], count)
        yield waiting
        yield GaugeMetricFamily(
            "defectlab_inference_models_loaded",
            "Model versions held in memory.",
            value=self._held(),
        )
