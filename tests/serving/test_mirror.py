"""The edge mirror against a real center, over loopback HTTP: the center is the detection service
(`running()`), the edge a `Service` in mirror mode with its own data directory, served the same
way. Between them sits `Relay`, a small loopback proxy that forwards every call, logs it, counts
the file bytes the center served, and can cut a download in the middle. A corrupt version is made
by flipping a byte of the file in the center's storage (so the center itself serves bytes that do
not match the SHA-256 it gives)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from defectlab import signature
from defectlab.cli import main
from defectlab.inference import registry
from defectlab.inference.models import DetectionModel, ModelVersion
from defectlab.media.storage import default_storage
from defectlab.serving.app import Service
from defectlab.serving.mirror import Mirror
from defectlab.serving.upstream import Upstream
from tests.conftest import Tenant
from tests.loopback import Loopback
from tests.serving.conftest import add_version, bearer, box_model, jpeg, key_of, put_model, running

pytestmark = pytest.mark.django_db(transaction=True)

REFRESH = 0.05


def until(condition: Callable[[], Any], seconds: float = 60, what: str = "") -> Any:
    """``condition()``'s first true value, polled until a deadline."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {seconds} s: {what or condition}")
        time.sleep(0.02)


class Relay:
    """A loopback proxy in front of the center."""

    FORWARDED = ("authorization", "range", "if-range", "accept-language")

    def __init__(self, center: str) -> None:
        self.center = center
        self.log: list[tuple[str, str | None]] = []  # ("alias" | "file", Range header)
        self.file_bytes = 0  # file bytes the center served through the relay
        self.cut_after: int | None = None  # the next file answer stops after this many bytes
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                relay.forward(self)

        self._server = Loopback(Handler)
        self.url = f"http://127.0.0.1:{self._server.port}"

    def calls(self, kind: str) -> int:
        return sum(1 for logged, _range in list(self.log) if logged == kind)

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        kind = "file" if handler.path.endswith("/file") else "alias"
        headers = {k: v for k, v in handler.headers.items() if k.lower() in self.FORWARDED}
        headers.update({k: v for k, v in handler.headers.items() if k.lower().startswith("x-")})
        self.log.append((kind, handler.headers.get("Range")))
        try:
            with (
                httpx.Client(base_url=self.center, timeout=30) as client,
                client.stream("GET", handler.path, headers=headers) as answer,
            ):
                handler.send_response(answer.status_code)
                for name in ("content-type", "content-length", "content-range", "etag"):
                    if name in answer.headers:
                        handler.send_header(name, answer.headers[name])
                handler.end_headers()
                cut = None
                if kind == "file":
                    cut, self.cut_after = self.cut_after, None
                sent = 0
                for chunk in answer.iter_raw(4096):
                    if cut is not None and sent + len(chunk) >= cut:
                        handler.wfile.write(chunk[: cut - sent])
                        sent = cut
                        break  # the connection closes with the body half sent
                    handler.wfile.write(chunk)
                    sent += len(chunk)
                if kind == "file":
                    self.file_bytes += sent
        except httpx.ConnectError:
            handler.send_response(502)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        handler.close_connection = True

    def close(self) -> None:
        self._server.close()


def edge(url: str, key: str, data: Path, *, sign: bool = False, cap: float = 0.2) -> Service:
    mirror = Mirror(
        Upstream(url, key, sign=sign),
        key,
        [("panels", "production")],
        data / "mirror",
        refresh_seconds=REFRESH,
        backoff_max_seconds=cap,
    )
    return Service(mirror)


def detect(client: httpx.Client, key: str, model: str = "panels", **headers: str) -> httpx.Response:
    return client.post(
        "/v1/detect",
        params={"model": model},
        files={"image": ("a.jpg", jpeg(640, 640))},
        headers=bearer(key, **headers),
    )


def answered(response: httpx.Response) -> tuple[int, list[float]]:
    body = response.json()
    return body["model"]["version"], body["results"][0]["detections"][0]["box"]


def follow_state(client: httpx.Client) -> dict[str, Any]:
    state: dict[str, Any] = client.get("/readyz").json()["follows"][0]
    return state


@pytest.fixture
def center(tenant: Tenant) -> Iterator[dict[str, Any]]:
    """The center, a relay in front of it, a line's model and the mirror's key."""
    model = put_model(tenant.organization, "panels", box_model(320, 320))
    with running() as client:
        relay = Relay(str(client.base_url))
        try:
            yield {
                "client": client,
                "relay": relay,
                "model": model,
                "key": key_of(tenant.organization, "models"),
                "detect_key": key_of(tenant.organization, "detect"),
            }
        finally:
            relay.close()


def move(model: DetectionModel, data: bytes) -> ModelVersion:
    version = add_version(model, None, data)
    registry.move_alias(model, None, "production", version.number)
    return version


def test_the_edge_answers_as_the_center_and_follows_the_alias(
    center: dict[str, Any], tmp_path: Path
) -> None:
    key, relay = center["key"], center["relay"]
    with running(edge(relay.url, key, tmp_path)) as line:
        until(lambda: line.get("/readyz").status_code == 200, what="the edge gets ready")
        at_edge = detect(line, key)
        at_center = detect(center["client"], center["detect_key"])
        assert at_edge.status_code == 200, at_edge.text
        assert answered(at_edge) == answered(at_center)
        assert at_edge.json()["model"] == at_center.json()["model"]
        state = follow_state(line)
        assert state["version"] == 1 and state["last_error"] is None and state["last_sync"]

        v2 = move(center["model"], box_model(100, 100, tag="v2"))
        until(lambda: answered(detect(line, key))[0] == 2, what="the edge switches to v2")
        # The center's own answers switch on its own refresh, which the edge may beat.
        until(
            lambda: answered(detect(center["client"], center["detect_key"]))[0] == 2,
            what="the center switches to v2",
        )
        at_center = detect(center["client"], center["detect_key"])
        assert answered(detect(line, key)) == answered(at_center)
        assert follow_state(line)["sha256"] == v2.sha256
        # NAME:ALIAS and the number of the version it holds answer; nothing else does.
        assert answered(detect(line, key, "panels:production"))[0] == 2
        assert answered(detect(line, key, "panels:2"))[0] == 2
        old = detect(line, key, "panels:1")
        other = detect(line, key, "welds")
        staging = detect(line, key, "panels:staging")
        metrics = line.get("/metrics").text

    assert [r.status_code for r in (old, other, staging)] == [404, 404, 404]
    assert other.json()["error"]["code"] == "model_not_found"
    # What the edge keeps: the current version's file, named by its hash, and its state.
    kept = tmp_path / "mirror" / "panels" / "production"
    assert sorted(p.name for p in kept.iterdir()) == [f"{v2.sha256}.onnx", "state.json"]
    state = json.loads((kept / "state.json").read_text())
    assert (state["version"], state["sha256"]) == (2, v2.sha256)
    assert key not in (kept / "state.json").read_text()
    assert "defectlab_inference_alias_swaps_total 2.0" in metrics


def test_a_file_that_does_not_match_its_sha256_is_refused_and_the_old_version_keeps_answering(
    center: dict[str, Any], tmp_path: Path
) -> None:
    key, relay = center["key"], center["relay"]
    with running(edge(relay.url, key, tmp_path)) as line:
        until(lambda: line.get("/readyz").status_code == 200, what="the edge gets ready")
        v2 = add_version(center["model"], None, box_model(100, 100, tag="v2"))
        path = Path(default_storage()._path(v2.file_key))  # type: ignore[attr-defined]
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        before = len(relay.log)
        registry.move_alias(center["model"], None, "production", v2.number)

        until(lambda: relay.calls("file") >= 3, what="the bad file fetched, and later again")
        log = list(relay.log)[before:]
        first = log.index(("file", None))
        second = log.index(("file", None), first + 1)
        waited = [kind for kind, _range in log[first + 1 : second]]
        assert waited.count("alias") >= 4, "a refused file is not fetched again at once"
        state = follow_state(line)
        assert "SHA-256" in state["last_error"] and state["version"] == 1
        assert line.get("/readyz").status_code == 200
        assert answered(detect(line, key))[0] == 1
    kept = tmp_path / "mirror" / "panels" / "production"
    assert not [p for p in kept.iterdir() if p.name.startswith(v2.sha256)]


def test_the_edge_keeps_answering_without_the_center_and_after_a_restart(
    tenant: Tenant, tmp_path: Path
) -> None:
    model = put_model(tenant.organization, "panels", box_model(200, 300))
    key = key_of(tenant.organization, "models", "detect")
    with ExitStack() as stack:
        central = stack.enter_context(running())
        line = stack.enter_context(running(edge(str(central.base_url), key, tmp_path)))
        until(lambda: line.get("/readyz").status_code == 200, what="the edge gets ready")
        expected = answered(detect(central, key))
        stack.close()  # the center, then the edge, stop
        with running(edge(str(central.base_url), key, tmp_path)) as again:
            # No center: the stored version, hashed again, answers.
            until(lambda: again.get("/readyz").status_code == 200, what="ready from the disk")
            assert answered(detect(again, key)) == expected
            until(lambda: follow_state(again)["last_error"], what="the center is missed")
            assert "cannot be reached" in follow_state(again)["last_error"]
            assert answered(detect(again, key)) == expected
    # A stored file that changed is not served.
    state = json.loads((tmp_path / "mirror" / "panels" / "production" / "state.json").read_text())
    stored = tmp_path / "mirror" / "panels" / "production" / f"{state['sha256']}.onnx"
    stored.write_bytes(stored.read_bytes() + b"\0")
    with running(edge(str(central.base_url), key, tmp_path)) as line:
        until(lambda: follow_state(line)["last_error"], what="the check fails")
        assert line.get("/readyz").status_code == 503
        refused = detect(line, key)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "model_not_ready"
    assert not stored.exists()  # deleted: the next sync fetches it again
    assert model.pk


def test_a_download_cut_in_the_middle_resumes_where_it_stopped(
    center: dict[str, Any], tmp_path: Path
) -> None:
    key, relay = center["key"], center["relay"]
    size = center["model"].versions.get().size
    cut = size // 2
    relay.cut_after = cut
    with running(edge(relay.url, key, tmp_path, sign=True)) as line:
        until(lambda: line.get("/readyz").status_code == 200, what="the edge gets ready")
        # A mirror that signs refuses its key as a bearer token, and answers it signed.
        as_bearer = detect(line, key)
        body = jpeg(640, 640)
        target = "/v1/detect?model=panels"
        signed = line.post(
            target,
            content=body,
            headers={**signature.sign(key, "POST", target, body), "Content-Type": "image/jpeg"},
        )
    assert as_bearer.status_code == 401
    assert as_bearer.json()["error"]["code"] == "signature_required"
    assert answered(signed)[0] == 1
    files = [logged for logged in relay.log if logged[0] == "file"]
    assert files == [("file", None), ("file", f"bytes={cut}-")]
    assert relay.file_bytes == size  # every byte served once


def test_the_mirror_endpoints_want_the_models_scope_and_the_callers_own_model(
    center: dict[str, Any], other_tenant: Tenant
) -> None:
    client = center["client"]
    data = registry.read_file(center["model"].versions.get())
    alias_path = "/v1/models/panels/aliases/production"
    file_path = "/v1/models/panels/versions/1/file"
    for path in (alias_path, file_path):
        refused = client.get(path, headers=bearer(center["detect_key"]))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "scope"
        chinese = client.get(
            path, headers=bearer(center["detect_key"], **{"Accept-Language": "zh-Hans"})
        )
        assert chinese.json()["error"]["message"] != refused.json()["error"]["message"]
        assert client.get(path).status_code == 401
    put_model(other_tenant.organization, "theirs", box_model(10, 10, tag="theirs"))
    their_key = key_of(other_tenant.organization, "models")
    for path in (
        "/v1/models/theirs/aliases/production",
        "/v1/models/theirs/versions/1/file",
        "/v1/models/panels/aliases/staging",
        "/v1/models/panels/versions/9/file",
    ):
        missing = client.get(path, headers=bearer(center["key"]))
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    # Their key reaches their own model of the same name, not ours.
    put_model(other_tenant.organization, "panels", box_model(10, 10, tag="their panels"))
    theirs = client.get(alias_path, headers=bearer(their_key)).json()
    ours = client.get(alias_path, headers=bearer(center["key"])).json()
    assert theirs["sha256"] != ours["sha256"]

    assert ours["version"] == 1 and ours["size"] == len(data) and ours["file"] == file_path
    assert ours["names"] == ["scratch", "dent"] and ours["input_size"] == [640, 640]
    assert {"layout", "conf", "iou", "max_det", "model", "alias"} <= set(ours)
    whole = client.get(file_path, headers=bearer(center["key"]))
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["etag"] == f'"{ours["sha256"]}"'
    assert whole.headers["content-length"] == str(len(data))
    part = client.get(file_path, headers=bearer(center["key"], Range="bytes=100-"))
    assert part.status_code == 206 and part.content == data[100:]
    assert part.headers["content-range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    other_file = client.get(
        file_path, headers=bearer(center["key"], Range="bytes=100-", **{"If-Range": '"abc"'})
    )
    assert other_file.status_code == 200 and other_file.content == data
    beyond = client.get(file_path, headers=bearer(center["key"], Range=f"bytes={len(data)}-"))
    assert beyond.status_code == 416 and beyond.json()["error"]["code"] == "range_not_satisfiable"
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"
    signed = client.get(alias_path, headers=signature.sign(center["key"], "GET", alias_path, b""))
    assert signed.status_code == 200 and signed.json()["sha256"] == ours["sha256"]
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/models/{name}/aliases/{alias}", "/v1/models/{name}/versions/{number}/file"} <= set(
        paths
    )


def test_the_edge_takes_only_its_own_key(
    center: dict[str, Any], other_tenant: Tenant, tmp_path: Path
) -> None:
    key, relay = center["key"], center["relay"]
    with running(edge(relay.url, key, tmp_path)) as line:
        until(lambda: line.get("/readyz").status_code == 200, what="the edge gets ready")
        same_org = detect(line, center["detect_key"])
        other_org = detect(line, key_of(other_tenant.organization))
        forged = detect(line, key[:-4] + "AAAA")
        nothing = line.post("/v1/detect?model=panels", files={"image": jpeg()})
        by_url = line.post(
            "/v1/detect",
            json={"model": "panels", "images": [{"url": "http://127.0.0.1:9/a.jpg"}]},
            headers=bearer(key),
        )
        body = jpeg(640, 640)
        target = "/v1/detect?model=panels"
        signed = line.post(
            target,
            content=body,
            headers={
                **signature.sign(key, "POST", target, body),
                "Content-Type": "image/jpeg",
            },
        )
    for refused in (same_org, other_org, forged, nothing):
        assert refused.status_code == 401, refused.text
    assert forged.json()["error"]["code"] == "invalid_key"
    assert signed.status_code == 200 and answered(signed)[0] == 1
    assert by_url.status_code == 400 and by_url.json()["error"]["code"] == "urls_not_served"


def test_serve_inference_as_a_mirror_needs_its_key_and_follows() -> None:
    result = CliRunner().invoke(
        main, ["serve-inference", "--upstream", "http://127.0.0.1:9"], prog_name="defectlab"
    )
    assert result.exit_code != 0
    assert "--key" in result.output and "--follow" in result.output
    result = CliRunner().invoke(
        main,
        ["serve-inference", "--upstream", "ftp://x", "--key", "dlk_x", "--follow", "panels"],
        prog_name="defectlab",
    )
    assert result.exit_code != 0 and "Cannot run as an edge mirror" in result.output


def test_the_edge_answers_with_the_organizations_saved_sensitivity(
    center: dict[str, Any], tmp_path: Path
) -> None:
    key, model = center["key"], center["model"]  # v1 finds one scratch scored 0.9

    def found(line: httpx.Client) -> int:
        return len(detect(line, key).json()["results"][0]["detections"])

    with running(edge(center["relay"].url, key, tmp_path)) as line:
        until(lambda: line.get("/readyz").status_code == 200, what="the edge gets ready")
        assert found(line) == 1
        registry.set_sensitivity(model, None, conf=0.95)  # as the center now answers
        until(lambda: found(line) == 0, what="the edge follows the saved sensitivity")
        registry.set_sensitivity(model, None, conf=None)
        until(lambda: found(line) == 1, what="the edge follows it back")
