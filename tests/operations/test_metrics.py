"""Acceptance 4 of issue 13: `/metrics` scraped after a labeling round trip and a detection shows
the counters moving, by the right amounts, on all three roles: the web (in this process, through
the Django test client), a real `defectlab worker` process (its own probe port) that runs a real
export, and the detection service (uvicorn on a loopback port)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import resolve

from defectlab.jobs.models import Job, JobState
from defectlab.labeling.models import Task
from defectlab.operations.metrics import SNAPSHOT
from defectlab.tenancy.models import Role
from defectlab.transfer.exports import start_export
from tests.conftest import Tenant, box, client_for, png_bytes
from tests.jobs.brokers import BROKERS
from tests.jobs.processes import WorkerProcess, crash_worker, wait_until
from tests.operations.scrape import Samples, free_port, label_values, moved, parse, value

pytestmark = pytest.mark.django_db(transaction=True)


def scrape_web(**headers: str) -> Samples:
    SNAPSHOT.forget()  # the database's gauges read now, not from a scrape moments ago
    response = Client().get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.content.decode())


DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy


def get(url: str, **headers: str) -> tuple[int, bytes]:
    """Status and body; (0, b"") while nothing listens yet."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with DIRECT.open(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except urllib.error.URLError:
        return 0, b""


def label_round_trip(t: Tenant) -> Task:
    """A manager uploads an image (a new task); an annotator saves a draft, then submits; a
    reviewer approves: all through the REST API."""
    upload = client_for(t.user(Role.OWNER)).post(
        f"/api/projects/{t.project.pk}/upload/",
        {"files": [_file("panel-1.png", png_bytes(96, 64))]},
        format="multipart",
    )
    assert upload.status_code == 201, upload.content
    task = Task.objects.get(project=t.project, file_name="panel-1.png")
    annotator = client_for(t.user(Role.ANNOTATOR))
    url = f"/api/tasks/{task.pk}/annotation/"
    draft = annotator.put(url, {"version": None, "shapes": [box(t.label)]}, format="json")
    assert draft.status_code == 200, draft.content
    body = {"version": draft.json()["version"], "shapes": [box(t.label)], "submit": True}
    assert annotator.put(url, body, format="json").status_code == 200
    review = client_for(t.user(Role.REVIEWER)).post(
        f"/api/tasks/{task.pk}/review/", {"verdict": "approve"}, format="json"
    )
    assert review.status_code in (200, 201), review.content
    return task


def _file(name: str, data: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


@pytest.fixture
def worker(tmp_path: Path, settings: Any) -> Any:
    """A real `defectlab worker` on the embedded broker with its probes on a free port."""
    with crash_worker("sqlite", tmp_path, settings) as process:
        port = free_port()
        process.env |= {
            "DEFECTLAB_WORKER_METRICS_PORT": str(port),
            "DEFECTLAB_WORKER_HEARTBEAT_SECONDS": "1",
            "DEFECTLAB_METRICS_CACHE_SECONDS": "0",
        }
        process.base = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
        process.start()
        yield process


def test_a_round_trip_and_a_detection_move_the_counters_of_every_role(
    tenant: Tenant, worker: WorkerProcess, settings: Any
) -> None:
    base: str = worker.base  # type: ignore[attr-defined]
    wait_until(lambda: get(f"{base}/readyz")[0] == 200, 60, "the worker's /readyz", worker)
    assert get(f"{base}/healthz") == (200, b'{"status": "ok"}')
    worker_before = parse(get(f"{base}/metrics")[1].decode())
    web_before = scrape_web()

    task = label_round_trip(tenant)
    job = start_export(tenant.project, {"format": "yolo", "only_approved": True}, None)
    wait_until(
        lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED, 60, "the export", worker
    )

    web = scrape_web()
    assert moved(web_before, web, "defectlab_annotations_saved_total") == 2
    assert moved(web_before, web, "defectlab_tasks_submitted_total") == 1
    assert moved(web_before, web, "defectlab_reviews_total", verdict="approve") == 1
    assert moved(web_before, web, "defectlab_reviews_total", verdict="reject") == 0
    assert moved(web_before, web, "defectlab_tasks", status="approved") == 1
    assert moved(web_before, web, "defectlab_tasks", status="new") == 0
    assert moved(web_before, web, "defectlab_jobs", kind="export", state="succeeded") == 1
    assert value(web, "defectlab_job_queue_depth", kind="export") == 0
    assert value(web, "defectlab_job_workers") == 1
    assert value(web, "defectlab_database_up") == 1
    # Requests by route, the URL pattern's name: the two saves, the verdict, the upload.
    annotation = resolve(f"/api/tasks/{task.pk}/annotation/").view_name
    for route, method, count in (
        (annotation, "PUT", 2),
        (resolve(f"/api/tasks/{task.pk}/review/").view_name, "POST", 1),
        (resolve(f"/api/projects/{tenant.project.pk}/upload/").view_name, "POST", 1),
    ):
        labels = {"route": route, "method": method}
        assert moved(web_before, web, "defectlab_http_requests_total", **labels, status="2xx") == (
            count
        )
        assert moved(web_before, web, "defectlab_http_request_seconds_count", **labels) == count
    # Labels name routes, never a path as sent, an organization or a person.
    seen = label_values(web, "defectlab_")
    assert annotation in seen
    for private in (f"/api/tasks/{task.pk}/", tenant.organization.name, tenant.project.name):
        assert not any(private in text for text in seen), private
    assert not any(text.startswith("/") for text in label_values(web, "defectlab_http"))

    # The worker's own /metrics: the export it ran, how long, none running now.
    after = parse(get(f"{base}/metrics")[1].decode())
    assert moved(worker_before, after, "defectlab_job_runs_total", kind="export", outcome="succeeded") == 1  # fmt: skip
    assert moved(worker_before, after, "defectlab_job_runs_total", kind="export", outcome="failed") == 0  # fmt: skip
    assert moved(worker_before, after, "defectlab_job_seconds_count", kind="export") == 1
    assert value(after, "defectlab_jobs_running", kind="export") == 0
    assert moved(worker_before, after, "defectlab_jobs", kind="export", state="succeeded") == 1
    assert value(after, "process_resident_memory_bytes") > 0
    status, body = get(f"{base}/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})


def test_the_detection_service_counts_a_detection(tenant: Tenant, settings: Any) -> None:
    from tests.serving.conftest import bearer, box_model, jpeg, key_of, put_model, running

    settings.INFERENCE_REFRESH_SECONDS = 0.1
    settings.INFERENCE_PRELOAD = []
    settings.INFERENCE_RUNNERS = 2
    settings.INFERENCE_BATCH_WINDOW_MS = 1.0
    settings.REDIS_URL = ""
    put_model(tenant.organization, "panels", box_model())
    key = key_of(tenant.organization)
    organization = str(tenant.organization.pk)
    with running() as service:
        before = parse(service.get("/metrics").text)
        detected = service.post(
            "/v1/detect?model=panels",
            content=jpeg(),
            headers=bearer(key, **{"Content-Type": "image/jpeg"}),
        )
        assert detected.status_code == 200, detected.text
        after = parse(service.get("/metrics").text)
        settings.METRICS_TOKEN = "s3cret-scrape-token"  # DEFECTLAB_METRICS_TOKEN: its bearer only
        refused = service.get("/metrics")
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith(
            "Bearer"
        )
        assert refused.text == "A bearer token is needed to read the metrics.\n"
        in_chinese = service.get("/metrics", headers={"Accept-Language": "zh-Hans"})
        assert in_chinese.status_code == 401 and "令牌" in in_chinese.text, in_chinese.text
        assert service.get("/metrics", headers=bearer("wrong")).status_code == 401
        assert service.get("/metrics", headers=bearer("s3cret-scrape-token")).status_code == 200
        assert service.get("/readyz").status_code == 200  # the probes never ask for it

    def total(samples: Samples, name: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)

    for name, labels in (
        ("defectlab_inference_requests_total", {"code": "ok"}),
        ("defectlab_inference_images_total", {}),
        ("defectlab_inference_request_seconds_count", {}),
    ):
        labels["organization"] = organization
        assert total(after, name, **labels) - total(before, name, **labels) == 1, name
    assert total(after, "defectlab_inference_run_seconds_count") >= 1


def test_with_a_token_metrics_answer_only_its_bearer(
    tenant: Tenant, worker: WorkerProcess, settings: Any
) -> None:
    """DEFECTLAB_METRICS_TOKEN: the web and the worker refuse a scrape without it (the probes
    never ask for it)."""
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "s3cret-scrape-token"},
    ):
        refused = Client().get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused["WWW-Authenticate"].startswith("Bearer")
        assert refused.content == b"A bearer token is needed to read the metrics.\n"
    assert scrape_web(Authorization="Bearer s3cret-scrape-token")
    assert Client().get("/readyz").status_code in (200, 503)  # never a 401

    base: str = worker.base  # type: ignore[attr-defined]
    worker.env["DEFECTLAB_METRICS_TOKEN"] = settings.METRICS_TOKEN
    worker.stop()
    worker.start()
    wait_until(lambda: get(f"{base}/healthz")[0] == 200, 60, "the worker's probes", worker)
    assert get(f"{base}/metrics")[0] == 401
    assert get(f"{base}/metrics", Authorization="Bearer wrong")[0] == 401
    status, body = get(f"{base}/metrics", Authorization="Bearer s3cret-scrape-token")
    assert status == 200 and b"defectlab_job_workers" in body


@pytest.mark.parametrize("kind", BROKERS)
def test_a_waiting_job_shows_in_the_queue_depth_and_the_brokers_count(
    tenant: Tenant, tmp_path: Path, settings: Any, kind: str
) -> None:
    """No worker runs: a job sent is queued in the database and waits in the broker (RabbitMQ's
    queue, or the embedded SQLite one), and the web's gauges say so."""
    with crash_worker(kind, tmp_path, settings):  # the broker and queue of this test alone
        before = scrape_web()
        assert value(before, "defectlab_broker_messages") == 0
        start_export(tenant.project, {"format": "yolo"}, None)
        deadline = time.monotonic() + 30
        while value(scraped := scrape_web(), "defectlab_broker_messages") < 1:
            assert time.monotonic() < deadline, "the message never showed in the broker's count"
            time.sleep(0.1)
        assert value(scraped, "defectlab_broker_messages") == 1
        assert moved(before, scraped, "defectlab_job_queue_depth", kind="export") == 1
        assert moved(before, scraped, "defectlab_jobs", kind="export", state="queued") == 1
