"""What the web's request metrics call a request (a bounded set of names, never the path as
sent), and the worker's readiness when its job worker does not run."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from defectlab.operations import probes
from tests.operations.scrape import Samples, free_port, moved, parse
from tests.operations.test_metrics import get

pytestmark = pytest.mark.django_db


def scrape() -> Samples:
    return parse(Client().get("/metrics").content.decode())


def test_requests_are_counted_by_route_name_method_and_status_class() -> None:
    client = Client()
    before = scrape()
    assert client.get("/healthz").status_code == 200
    assert client.get("/no/such/page/12345").status_code == 404
    assert client.get("/api/tasks/987654/").status_code in (401, 403)
    assert client.generic("BREW", "/healthz").status_code == 200
    assert client.get("/static/no-such-file.js").status_code == 404
    after = scrape()
    requests = "defectlab_http_requests_total"
    assert moved(before, after, requests, route="healthz", method="GET", status="2xx") == 1
    assert moved(before, after, requests, route="healthz", method="other", status="2xx") == 1
    assert moved(before, after, requests, route="unmatched", method="GET", status="4xx") == 1
    assert moved(before, after, requests, route="task-detail", method="GET", status="4xx") == 1
    assert moved(before, after, requests, route="static", method="GET", status="4xx") == 1
    assert moved(before, after, "defectlab_http_request_seconds_count", route="healthz", method="GET") == 1  # fmt: skip
    paths = {value for (name, labels) in after for _label, value in labels if "/" in value}
    assert not paths, paths  # no label is a path as sent


@pytest.mark.django_db(transaction=True)  # the probe server's threads have connections of their own
def test_the_worker_is_not_ready_while_its_job_worker_does_not_run() -> None:
    """The probe server without a running job worker (it starts before the loop, and stays
    while the loop stops): alive, not ready; anything else is 404."""
    with probes.worker_probes("127.0.0.1", free_port()) as server:
        assert server is not None
        base = f"http://127.0.0.1:{server.server_port}"
        assert get(f"{base}/healthz") == (200, b'{"status": "ok"}')
        status, body = get(f"{base}/readyz")
        assert (status, json.loads(body)) == (
            503,
            {"status": "unavailable", "worker": "the job worker is not running"},
        )
        assert get(f"{base}/metrics")[0] == 200
        assert get(f"{base}/nothing")[0] == 404
    assert get(f"{base}/healthz")[0] == 0  # stopped with the block


@pytest.mark.django_db(transaction=True)
def test_a_probe_port_already_taken_leaves_the_worker_running_without_probes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with probes.worker_probes("127.0.0.1", free_port()) as first:
        assert first is not None
        with probes.worker_probes("127.0.0.1", first.server_port) as second:
            assert second is None
    assert "DEFECTLAB_WORKER_METRICS_PORT" in caplog.text
    with probes.worker_probes("127.0.0.1", 0) as off:
        assert off is None


def test_probes_and_metrics_answer_whatever_the_host() -> None:
    """Kubelet probes and Prometheus reach a pod by its IP, which is not one of
    DEFECTLAB_PUBLIC_URLS: these three answer anyway; every other address keeps the host check."""
    for path in ("/healthz", "/readyz", "/metrics"):
        assert Client().get(path, HTTP_HOST="10.9.9.9:8080").status_code in (200, 503), path
    assert Client().get("/api/projects/", HTTP_HOST="10.9.9.9:8080").status_code == 400
