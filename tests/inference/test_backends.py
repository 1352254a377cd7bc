"""External model backends over real HTTP on loopback.

The backend here is written to Label Studio's documented ML-backend protocol (``/health``,
``/setup``, ``/predict`` as ``label_studio_ml/api.py`` of HumanSignal/label-studio-ml-backend
serves them), with http.server: the ``label-studio-ml`` package cannot be a dev dependency
cleanly (PyPI's 1.0.9 pins Flask 1.1.2, Werkzeug 2.0.2 and Jinja2 3.0.3, below what we have;
the maintained 2.x is installed from git and pulls label-studio-sdk from git). The client was
also run by hand against a backend built on that 2.x package (commit d02cedf, with
label-studio-sdk 2.1.2 in a throwaway virtualenv): /health, /setup (its LabelInterface read our
config), /predict with a ModelResponse, and Basic auth (401 without the header).

Loopback is opened by the operator (``DEFECTLAB_FETCH_ALLOWLIST``), as only the operator can; the
organization's allowlist is shown at work with a private address (10.0.0.7) that the test's
socket patch carries to the loopback server: the guard judges 10.0.0.7, the bytes go to
127.0.0.1."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from xml.etree import ElementTree

import pytest

from defectlab.inference import backends
from defectlab.inference.backends import BackendError
from defectlab.inference.models import MLBackend
from defectlab.ingest.services import add_allowed_network
from defectlab.labeling.models import Label
from defectlab.media.services import read_grant
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import AuditEvent, Role
from tests.conftest import Tenant, client_for
from tests.loopback import Loopback, reply

pytestmark = pytest.mark.django_db

PRIVATE = "10.0.0.7"


@dataclass
class Backend:
    """A Label Studio ML backend on loopback. ``predictions(tasks)`` makes /predict's results;
    ``mode`` spoils its answers: ``garbage``, ``500``, ``slow``, ``huge``."""

    predictions: Callable[[list[dict[str, Any]]], Any] = lambda tasks: [
        {"result": [], "score": 0.0} for _task in tasks
    ]
    mode: str = ""
    seen: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        backend = self
        self.release = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                backend.seen.append((self.path, dict(self.headers.items()), None))
                if self.path == "/health":
                    self._spoiled() or self._json({"status": "UP", "model_class": "Fake"})
                else:
                    self._json({"error": "no"}, 404)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                backend.seen.append((self.path, dict(self.headers.items()), body))
                if self._spoiled():
                    return
                if self.path == "/setup":
                    self._json({"model_version": "fake-1.0"})
                elif self.path == "/predict":
                    self._json({"results": backend.predictions(body["tasks"])})
                else:
                    self._json({"error": "no"}, 404)

            def _spoiled(self) -> bool:
                mode = backend.mode
                if mode == "garbage":
                    reply(self, 200, b"<html>hello</html>", "text/html")
                elif mode == "500":
                    reply(self, 500, b"Traceback: model exploded", "text/plain")
                elif mode == "slow":
                    backend.release.wait(10)
                    self._json({"status": "UP"})
                elif mode == "huge":
                    reply(
                        self,
                        200,
                        b"[" + b" " * (backends.MAX_REPLY_BYTES + 10) + b"]",
                        "application/json",
                    )
                return bool(mode)

            def _json(self, data: Any, status: int = 200) -> None:
                reply(self, status, json.dumps(data).encode(), "application/json")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = Loopback(Handler)
        self.port = self._server.port

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"

    def bodies(self, path: str) -> list[Any]:
        return [body for seen, _headers, body in self.seen if seen == path]

    def close(self) -> None:
        self.release.set()
        self._server.close()


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every connection recorded; one to PRIVATE is carried to loopback, any other address
    but loopback fails the test."""
    made: list[tuple[str, int]] = []
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        made.append((address[0], address[1]))
        if address[0] == PRIVATE:
            address = ("127.0.0.1", address[1])
        elif not ipaddress.ip_address(address[0]).is_loopback:
            pytest.fail(f"a test tried to connect outside this machine: {address!r}")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return made


@pytest.fixture
def server() -> Iterator[Backend]:
    running = Backend()
    yield running
    running.close()


@pytest.fixture
def loopback_open(settings: Any) -> None:
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]  # the operator opens loopback


@pytest.fixture
def public(settings: Any) -> None:
    settings.PUBLIC_URLS = ["https://labels.example.com"]


def make(tenant: Tenant, url: str, **fields: Any) -> MLBackend:
    return backends.create_backend(
        tenant.organization, tenant.user(Role.MANAGER), name="SAM", url=url, **fields
    )


def percent_box(label: str, x: float, y: float, w: float, h: float, **extra: Any) -> dict[str, Any]:
    return {
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 640,  # what the backend read; the task's own size wins
        "original_height": 480,
        "value": {
            "x": x,
            "y": y,
            "width": w,
            "height": h,
            "rotation": 0,
            "rectanglelabels": [label],
        },
        **extra,
    }


def percent_polygon(label: str, points: list[list[float]]) -> dict[str, Any]:
    return {
        "from_name": "polygon",
        "to_name": "image",
        "type": "polygonlabels",
        "value": {"points": points, "polygonlabels": [label]},
    }


# ---------------------------------------------------------------------------- the round trip


def test_health_setup_predict_round_trip_gives_pixel_shapes_with_scores(
    tenant: Tenant, server: Backend, loopback_open: None, public: None
) -> None:
    server.predictions = lambda tasks: [
        {
            "model_version": "fake-1.0",
            "score": 0.8,
            "result": [
                percent_box("scratch", 10, 25, 50, 50, score=0.9),
                percent_polygon("dent", [[0, 0], [50, 0], [50, 50]]),
                percent_box("weld", 1, 1, 5, 5),  # no such label here
                {"type": "brushlabels", "value": {"rle": [1], "brushlabels": ["dent"]}},
                percent_box("scratch", 10, 10, 0, 5),  # no area
            ],
        }
        for _task in tasks
    ]
    backend = make(tenant, server.url())
    health = backends.check(backend, tenant.user(Role.MANAGER), project=tenant.project)
    assert health.ok and health.model_version == "fake-1.0" and health.problem is None
    backend.refresh_from_db()
    assert (backend.health, backend.model_version, backend.health_message) == ("up", "fake-1.0", "")

    tasks = tenant.tasks[:2]  # 64 x 48 images
    predicted = backends.predict_tasks(backend, tenant.project, tasks)
    scratch, dent = tenant.label.pk, Label.objects.get(project=tenant.project, name="dent").pk
    assert predicted.shapes == [
        [
            {"type": "box", "points": [[6.4, 12.0], [38.4, 36.0]], "label": scratch,
             "attributes": {}, "score": 0.9},
            {"type": "polygon", "points": [[0.0, 0.0], [32.0, 0.0], [32.0, 24.0]], "label": dent,
             "attributes": {}, "score": 0.8},
        ]
    ] * 2  # fmt: skip
    assert predicted.skipped == {"unknown_label": 2, "unsupported": 2, "invalid": 2}
    assert predicted.model_version == "fake-1.0"
    assert backends.predict(backend, tenant.project, tasks) == predicted.shapes

    (sent, *_again) = server.bodies("/predict")
    assert [task["id"] for task in sent["tasks"]] == [task.pk for task in tasks]
    assert sent["project"] == backends.project_key(tenant.project)
    for task, given in zip(tasks, sent["tasks"], strict=True):
        url = given["data"]["image"]
        assert url.startswith("https://labels.example.com/media/")
        grant = read_grant(url.rsplit("/", 1)[-1])
        assert grant is not None and grant.task_id == task.pk


def test_the_setup_sends_the_projects_labels_as_a_label_config(
    tenant: Tenant, server: Backend, loopback_open: None, public: None
) -> None:
    backend = make(tenant, server.url())
    assert backends.check(backend, project=tenant.project).ok
    (setup,) = server.bodies("/setup")
    assert setup["project"] == backends.project_key(tenant.project)
    assert setup["hostname"] == "https://labels.example.com" and setup["access_token"] == ""
    root = ElementTree.fromstring(setup["schema"])
    assert root.find("Image").get("value") == "$image"  # type: ignore[union-attr]
    for control in ("RectangleLabels", "PolygonLabels"):
        names = [
            label.get("value") for label in root.iter(control) for label in label.iter("Label")
        ]
        assert names == ["scratch", "dent"]
    assert root.find("KeyPointLabels") is None  # the project draws no points


def test_the_authorization_header_is_sent_and_never_stored_in_clear(
    tenant: Tenant, server: Backend, loopback_open: None
) -> None:
    backend = make(tenant, server.url(), auth="Token s3cret-token")
    assert "s3cret" not in MLBackend.objects.get(pk=backend.pk).auth
    assert backends.check(backend).ok
    assert server.seen[0][1]["Authorization"] == "Token s3cret-token"
    event = AuditEvent.objects.get(action=AuditAction.BACKEND_CREATED)
    assert "s3cret" not in json.dumps(event.data)


# ---------------------------------------------------------------------------- the guard


def test_loopback_is_refused_naming_the_rule_until_the_operator_opens_it(
    tenant: Tenant, server: Backend, connections: list[tuple[str, int]], settings: Any
) -> None:
    backend = make(tenant, server.url())
    health = backends.check(backend)
    assert not health.ok and health.problem is not None
    assert health.problem.code == "backend_refused"
    assert health.problem.details["rule"] == "loopback"
    assert "SAM" in health.problem.message and "rule: loopback" in health.problem.message
    assert connections == [] and server.seen == []
    backend.refresh_from_db()
    assert backend.health == "down" and "rule: loopback" in backend.health_message

    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]
    assert backends.check(backend).ok


def test_a_private_backend_needs_the_organizations_allowlist(
    tenant: Tenant, server: Backend, connections: list[tuple[str, int]]
) -> None:
    backend = make(tenant, server.url(PRIVATE))
    health = backends.check(backend)
    assert health.problem is not None and health.problem.details["rule"] == "private"
    assert "allowlist" in health.problem.message and connections == []

    add_allowed_network(tenant.organization, tenant.user(Role.OWNER), "10.0.0.0/8")
    assert backends.check(backend).ok
    assert connections[-1][0] == PRIVATE


# ---------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("mode", "code", "words"),
    [
        ("garbage", "backend_reply", "not JSON"),
        ("500", "backend_http", "500"),
        ("slow", "backend_unreachable", "within"),
        ("huge", "backend_reply", "larger than"),
    ],
)
def test_a_backend_that_misbehaves_is_a_clear_error_naming_it(
    tenant: Tenant,
    server: Backend,
    loopback_open: None,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    code: str,
    words: str,
) -> None:
    monkeypatch.setattr(backends, "MAX_REPLY_BYTES", 1 << 20)
    backend = make(tenant, server.url())
    server.mode = mode
    with pytest.raises(BackendError) as raised:
        backends.predict(backend, tenant.project, tenant.tasks[:1], timeout=0.5)
    error = raised.value
    assert error.code == code and "“SAM”" in error.message and words in error.message
    assert error.details["backend"] == backend.pk
    if mode in ("garbage", "500", "slow"):  # /health: read by fetch, the same errors
        health = backends.check(backend, timeout=0.5)
        assert health.problem is not None and words in health.problem.message


@pytest.mark.parametrize(
    "reply",
    [{"results": "nope"}, {"results": [{"result": []}] * 3}, {"results": ["x"]}, 7],
)
def test_a_reply_of_the_wrong_shape_is_refused(
    tenant: Tenant, server: Backend, loopback_open: None, reply: Any
) -> None:
    backend = make(tenant, server.url())
    server.predictions = lambda tasks: reply["results"] if isinstance(reply, dict) else reply
    with pytest.raises(BackendError) as raised:
        backends.predict(backend, tenant.project, tenant.tasks[:1])
    assert raised.value.code == "backend_reply" and "ML-backend protocol" in raised.value.message


def test_errors_are_translated(tenant: Tenant, server: Backend, loopback_open: None) -> None:
    from django.utils import translation

    backend = make(tenant, server.url())
    server.mode = "500"
    with translation.override("zh-hans"), pytest.raises(BackendError) as raised:
        backends.predict(backend, tenant.project, tenant.tasks[:1])
    assert "模型后端" in raised.value.message


# ---------------------------------------------------------------------------- the API


def test_the_api_adds_checks_and_hides_the_header_and_other_organizations_get_404(
    tenant: Tenant, other_tenant: Tenant, server: Backend, loopback_open: None
) -> None:
    manager = client_for(tenant.user(Role.MANAGER))
    answer = manager.post(
        "/api/backends/",
        {"organization": tenant.organization.pk, "name": "YOLO", "url": server.url(),
         "auth": "Bearer abc"},
        format="json",
    )  # fmt: skip
    assert answer.status_code == 201, answer.content
    created = answer.json()
    assert created["has_auth"] is True and "auth" not in created and created["health"] == "unknown"
    url = f"/api/backends/{created['id']}/"

    checked = manager.post(url + "check/", {"project": tenant.project.pk}, format="json").json()
    assert checked["ok"] is True and checked["model_version"] == "fake-1.0"
    assert checked["problem"] is None and checked["backend"]["health"] == "up"

    annotator = client_for(tenant.user(Role.ANNOTATOR))
    assert annotator.get(url).status_code == 200
    assert annotator.post(url + "check/", {}, format="json").status_code == 403
    assert annotator.delete(url).status_code == 403

    stranger = client_for(other_tenant.user(Role.OWNER))
    assert stranger.get(url).status_code == 404
    assert stranger.post(url + "check/", {}, format="json").status_code == 404
    assert stranger.patch(url, {"name": "mine"}, format="json").status_code == 404
    assert stranger.delete(url).status_code == 404
    assert stranger.get("/api/backends/").json()["results"] == []
    other_project = {"project": other_tenant.project.pk}
    assert manager.post(url + "check/", other_project, format="json").status_code == 404

    assert manager.patch(url, {"note": "line 3"}, format="json").json()["note"] == "line 3"
    twin = {"organization": tenant.organization.pk, "name": "YOLO", "url": server.url()}
    assert manager.post("/api/backends/", twin, format="json").status_code == 409
    assert manager.delete(url).status_code == 204
    assert not MLBackend.objects.exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="backend.").values_list("action", flat=True)
    )
    assert sorted(actions) == ["backend.created", "backend.deleted", "backend.updated"]


def test_the_api_check_answers_the_refusal_with_its_rule(tenant: Tenant, server: Backend) -> None:
    backend = make(tenant, server.url())
    answer = client_for(tenant.user(Role.MANAGER)).post(
        f"/api/backends/{backend.pk}/check/", {}, format="json"
    )
    assert answer.status_code == 200
    problem = answer.json()["problem"]
    assert problem["code"] == "backend_refused" and problem["rule"] == "loopback"


def test_a_bad_address_is_refused_when_saved(tenant: Tenant) -> None:
    answer = client_for(tenant.user(Role.MANAGER)).post(
        "/api/backends/",
        {"organization": tenant.organization.pk, "name": "x", "url": "ftp://models/"},
        format="json",
    )
    assert answer.status_code == 400


# ---------------------------------------------------------------------------- the command


def test_the_command_adds_lists_and_checks(tenant: Tenant, server: Backend, settings: Any) -> None:
    from click.testing import CliRunner

    from defectlab.cli import main

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), prog_name="defectlab")
        return result.exit_code, result.output

    owner = tenant.user(Role.OWNER).email
    code, output = run(
        "model", "backend", "add", "SAM", server.url(), "--organization", "Acme", "--as", owner
    )
    assert code == 0 and "Added model backend" in output, output
    code, output = run("model", "backend", "check", "SAM")
    assert code == 1 and "rule: loopback" in output
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]
    code, output = run("model", "backend", "check", "SAM", "--project", str(tenant.project.pk))
    assert code == 0 and "SAM is up, model version fake-1.0." in output, output
    code, output = run("model", "backend", "list", "--organization", "Acme")
    assert code == 0 and "SAM  (Acme)" in output and "up  model fake-1.0" in output


# ---------------------------------------------------------------------------- pre-annotation


def test_a_backend_pre_annotates_a_project_as_a_job(
    tenant: Tenant, server: Backend, loopback_open: None, public: None, drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    """The same job as a registry version's: one prediction per task and backend, replaced
    when run again, started from the API too."""
    from defectlab.inference import preannotation
    from defectlab.jobs.models import Job, JobState
    from defectlab.labeling.models import Prediction

    server.predictions = lambda tasks: [
        {"model_version": "fake-1.0", "score": 0.8,
         "result": [percent_box("scratch", 10, 25, 50, 50, score=0.9)]}
        for _task in tasks
    ]  # fmt: skip
    backend = make(tenant, server.url())
    manager = tenant.user(Role.MANAGER)
    with django_capture_on_commit_callbacks(execute=True):
        job = preannotation.start_preannotation(tenant.project, manager, backend=backend)
    drain()
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    assert (job.result["backend"], job.result["tasks"], job.result["shapes"]) == (
        "SAM", len(tenant.tasks), len(tenant.tasks),
    )  # fmt: skip
    rows = Prediction.objects.filter(task__project=tenant.project).order_by("task_id")
    assert [row.task_id for row in rows] == [task.pk for task in tenant.tasks]
    assert {(row.source, row.model_name, row.model_version) for row in rows} == {
        (f"backend:{backend.pk}", "SAM", "fake-1.0")
    }
    first = [row.pk for row in rows]
    start = f"/api/projects/{tenant.project.pk}/preannotate/"
    client = client_for(manager)
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(start, {"backend": backend.pk}, format="json")
    assert answer.status_code == 202, answer.content
    drain()
    assert Job.objects.get(pk=answer.json()["id"]).state == JobState.SUCCEEDED
    again = [row.task_id for row in rows.all()]
    assert again == [task.pk for task in tenant.tasks]  # replaced, never a second row
    assert not {row.pk for row in rows.all()} & set(first)
    both = {"backend": backend.pk, "model": 1}
    assert client.post(start, both, format="json").status_code in (400, 404)


def test_a_backend_that_fails_fails_the_job_with_its_message(
    tenant: Tenant, server: Backend, loopback_open: None, public: None, drain: Any,
    django_capture_on_commit_callbacks: Any, settings: Any,
) -> None:  # fmt: skip
    from defectlab.inference import preannotation
    from defectlab.jobs.models import JobState

    settings.JOB_MAX_ATTEMPTS = 2
    server.mode = "500"
    backend = make(tenant, server.url())
    with django_capture_on_commit_callbacks(execute=True):
        job = preannotation.start_preannotation(
            tenant.project, tenant.user(Role.MANAGER), backend=backend
        )
    drain()
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.attempts == 2
    assert "SAM" in job.error


def test_the_authorization_header_never_follows_a_redirect_to_another_origin(
    tenant: Tenant, loopback_open: None
) -> None:
    """/health redirects to another host: the guarded fetcher follows (the policy checks the
    new address) but sends the backend's secret only to the backend's own origin."""
    from http.server import BaseHTTPRequestHandler

    from tests.loopback import Loopback, reply

    seen: list[str | None] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            reply(self, 200, b'{"status": "UP"}', "application/json")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    other = Loopback(Elsewhere)

    class Moved(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{other.port}/health")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    moved = Loopback(Moved)
    try:
        backend = make(tenant, f"http://127.0.0.1:{moved.port}", auth="Bearer s3cret")
        assert backends.check(backend).ok
    finally:
        moved.close()
        other.close()
    assert seen == ["Bearer s3cret", None]
