"""Images kept by reference (``{"image": url}``) in exports and labeling: an image that cannot be
fetched is retried, then left out of the export with a warning instead of failing it; an image
imported without a size gets it the first time it passes through us, and the shapes are checked
against it then. Every server is a real HTTP server on loopback (tests/ingest/conftest.py)."""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
import zipfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

import numpy as np
import pytest
from PIL import Image

from defectlab.ingest.services import HEAD_BYTES
from defectlab.jobs.models import Job, JobState
from defectlab.jobs.runner import run_job
from defectlab.labeling import services, sizes
from defectlab.labeling.models import Annotation, AnnotationVersion, Project, Task
from defectlab.media import services as media_services
from defectlab.tenancy.models import AuditEvent, Role
from defectlab.transfer import referenced
from tests.conftest import Tenant, client_for, png_bytes
from tests.ingest.conftest import LoopbackServer, Route, send
from tests.web.test_workspace_page import signed_in

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------------------- helpers


def reset(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    """Read the request, then drop the connection with a TCP reset (a crashing server)."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()


def flaky(failures: int, then: Route) -> Route:
    """Reset the first ``failures`` requests, then answer as ``then`` does."""
    count = [0]

    def route(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        count[0] += 1
        (reset if count[0] <= failures else then)(handler, stop)

    return route


def ranged(data: bytes, asked: list[str | None], sent: list[int]) -> Route:
    """``data``, honouring a ``Range: bytes=0-N`` request with a 206 (as web servers do)."""

    def route(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        header = handler.headers.get("Range")
        asked.append(header)
        body, status = data, 200
        if header and header.startswith("bytes=0-"):
            body, status = data[: int(header.removeprefix("bytes=0-")) + 1], 206
        handler.send_response(status)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(len(body)))
        if status == 206:
            handler.send_header("Content-Range", f"bytes 0-{len(body) - 1}/{len(data)}")
        handler.end_headers()
        handler.wfile.write(body)
        sent.append(len(body))

    return route


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused (a host that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def noise_png(width: int, height: int) -> bytes:
    """A PNG that does not compress: far larger than its header."""
    pixels = np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def allow_loopback(settings: Any) -> None:
    """The test servers are on loopback, which only the operator's setting can open."""
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]


def new_project(tenant: Tenant) -> Project:
    return services.create_project(
        tenant.organization, tenant.user(Role.OWNER), name="Line 3", labels=[{"name": "dent"}]
    )


def reference(project: Project, url: str, **size: int) -> Task:
    services.import_references(project, [{"image": url, **size}])
    return Task.objects.filter(project=project).latest("id")


def box(project: Project, x1: float, y1: float, x2: float, y2: float) -> dict[str, Any]:
    label = project.labels.get(name="dent")
    return {"type": "box", "points": [[x1, y1], [x2, y2]], "label": label.pk}


def put_shapes(tenant: Tenant, task: Task, shapes: list[dict[str, Any]]) -> Any:
    current = Annotation.objects.filter(task=task).first()
    return client_for(tenant.user(Role.MANAGER)).put(
        f"/api/tasks/{task.pk}/annotation/",
        {"version": current.version if current else None, "shapes": shapes},
        format="json",
    )


def export(tenant: Tenant, project: Project, **options: Any) -> tuple[Job, zipfile.ZipFile]:
    client = client_for(tenant.user(Role.MANAGER))
    response = client.post(f"/api/projects/{project.pk}/export/", options, format="json")
    assert response.status_code == 202, response.content
    run_job(response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    assert job.state == JobState.SUCCEEDED, job.error
    download = client.get(f"/api/jobs/{job.pk}/download/")
    assert download.status_code == 200
    data = b"".join(download.streaming_content)  # type: ignore[attr-defined]
    return job, zipfile.ZipFile(io.BytesIO(data))


# ---------------------------------------------------------------------------- point 3


def test_an_image_that_cannot_be_fetched_is_retried_then_left_out_with_a_warning(
    tenant: Tenant,
    serve: Callable[..., LoopbackServer],
    connections: list[tuple[str, int]],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.JOB_MAX_ATTEMPTS = 3
    monkeypatch.setattr(referenced, "RETRY_PAUSE", 0.0)  # the pauses themselves are not tested
    server = serve(
        {
            "/good.png": send(png_bytes(32, 24)),
            "/crashing.png": reset,
            "/flaky.png": flaky(2, send(png_bytes(32, 24))),  # back on the third attempt
        }
    )
    down = closed_port()
    allow_loopback(settings)
    project = new_project(tenant)
    urls = [
        server.url("/good.png"),
        f"http://127.0.0.1:{down}/a.png",  # the host is down
        server.url("/crashing.png"),
        "http://10.1.2.3/private.png",  # refused by the policy: never tried, never retried
        server.url("/flaky.png"),
        f"http://127.0.0.1:{down}/b.png",  # the same host, still down
    ]
    tasks = [reference(project, url, width=32, height=24) for url in urls]
    for task in tasks:
        assert put_shapes(tenant, task, [box(project, 2, 2, 20, 20)]).status_code == 200

    job, archive = export(tenant, project, format="yolo", include_unlabeled=True)

    names = set(archive.namelist())
    assert {"images/train/good.png", "labels/train/good.txt"} <= names
    assert {"images/train/flaky.png", "labels/train/flaky.txt"} <= names
    for gone in ("a", "crashing", "private", "b"):  # no label file without its image
        assert not any(name.rsplit("/", 1)[-1].startswith(gone + ".") for name in names), gone
    assert job.result["items"] == 2 and job.result["missing"] == 4
    assert (job.done, job.failed) == (6, 4)
    warnings = {warning["task"]: warning for warning in job.result["warnings"]}
    assert sorted(warnings) == [tasks[1].pk, tasks[2].pk, tasks[3].pk, tasks[5].pk]
    assert warnings[tasks[1].pk]["file_name"] == "a.png"
    assert warnings[tasks[1].pk]["reason"].startswith(f"Could not fetch http://127.0.0.1:{down}/")
    assert "(rule: private)" in warnings[tasks[3].pk]["reason"]
    # Passing failures were tried JOB_MAX_ATTEMPTS times; once a host failed all of them, its
    # next image got one attempt. The refusal was not retried (and nothing connected).
    assert [seen.path for seen in server.seen].count("/crashing.png") == 3
    assert [seen.path for seen in server.seen].count("/flaky.png") == 3
    assert connections.count(("127.0.0.1", down)) == 3 + 1
    assert all(host == "127.0.0.1" for host, _port in connections)

    # The job's page lists them, in the reader's language.
    page = signed_in(tenant.user(Role.MANAGER)).get(f"/jobs/{job.pk}/").content.decode()
    assert "Images left out" in page and "4 tasks were left out of the export" in page
    assert "crashing.png" in page and "rule: private" in page
    chinese = signed_in(tenant.user(Role.MANAGER), "zh-hans").get(f"/jobs/{job.pk}/")
    assert "未导出的图像" in chinese.content.decode()


# ---------------------------------------------------------------------------- point 4


EXPECTED = {
    "yolo": ("labels/train/w.txt", "0 0.375 0.5 0.5 0.666667"),
    "coco": ("annotations/instances_default.json", '"width": 40, "height": 30'),
    "labelstudio": ("tasks.json", '"original_width": 40, "original_height": 30'),
}


@pytest.mark.parametrize("include_images", [True, False])
@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_an_annotated_reference_imported_without_a_size_exports(
    tenant: Tenant,
    serve: Callable[..., LoopbackServer],
    fmt: str,
    include_images: bool,
    settings: Any,
) -> None:
    asked: list[str | None] = []
    sent: list[int] = []
    server = serve({"/w.png": ranged(png_bytes(40, 30), asked, sent)})
    project = new_project(tenant)
    task = reference(project, server.url("/w.png"))  # {"image": url}: no width, no height
    # Drawn while the address was not yet allowed: the size could not be learned on save.
    assert put_shapes(tenant, task, [box(project, 5, 5, 25, 25)]).status_code == 200
    assert Task.objects.get(pk=task.pk).width is None
    allow_loopback(settings)

    job, archive = export(
        tenant, project, format=fmt, include_images=include_images, include_unlabeled=True
    )

    assert job.result["missing"] == 0 and job.result["warnings"] == []
    member, expected = EXPECTED[fmt]
    text = archive.read(member).decode()
    if fmt == "yolo":
        assert text.strip() == expected
    else:
        assert expected in json.dumps(json.loads(text))
    task.refresh_from_db()
    assert (task.width, task.height) == (40, 30)
    # For the size alone, only the header was asked for.
    assert asked == ([None] if include_images else [f"bytes=0-{HEAD_BYTES - 1}"])


def test_the_size_is_read_from_the_header_of_a_large_image(
    tenant: Tenant, serve: Callable[..., LoopbackServer], settings: Any
) -> None:
    big = noise_png(300, 200)
    assert len(big) > 2 * HEAD_BYTES
    asked: list[str | None] = []
    sent: list[int] = []
    server = serve({"/big.png": ranged(big, asked, sent), "/all.png": send(big)})
    allow_loopback(settings)
    project = new_project(tenant)
    for path in ("/big.png", "/all.png"):  # a server that honours Range, one that does not
        task = reference(project, server.url(path))
        assert sizes.learn_size(task)
        assert (Task.objects.get(pk=task.pk).width, task.height) == (300, 200)
    assert asked == [f"bytes=0-{HEAD_BYTES - 1}"] and sent == [HEAD_BYTES]


def test_shapes_are_checked_against_the_size_learned_on_save(
    tenant: Tenant, serve: Callable[..., LoopbackServer], settings: Any
) -> None:
    server = serve({"/w.png": send(png_bytes(40, 30))})
    allow_loopback(settings)
    project = new_project(tenant)
    task = reference(project, server.url("/w.png"))

    refused = put_shapes(tenant, task, [box(project, 100000, 100000, 100010, 100010)])

    assert refused.status_code == 400
    assert "outside the 40 by 30 image" in refused.json()["error"]["message"]
    assert not Annotation.objects.filter(task=task).exists()
    assert (Task.objects.get(pk=task.pk).width, Task.objects.get(pk=task.pk).height) == (40, 30)
    assert put_shapes(tenant, task, [box(project, 1, 1, 39, 29)]).status_code == 200


def test_shapes_saved_before_the_size_was_known_are_fitted_when_it_is_learned(
    tenant: Tenant, serve: Callable[..., LoopbackServer], settings: Any
) -> None:
    server = serve({"/w.png": send(png_bytes(40, 30))})
    project = new_project(tenant)
    task = reference(project, server.url("/w.png"))
    drawn = [
        box(project, 10, 10, 100, 50),  # reaches past the border: clipped
        box(project, 500, 500, 600, 600),  # entirely outside: taken out
        box(project, 1, 1, 5, 5),  # fits
    ]
    # The image cannot be fetched yet (its address is not allowed): the shapes are accepted.
    assert put_shapes(tenant, task, drawn).status_code == 200
    allow_loopback(settings)

    # The first time someone looks at it, the size is learned and the shapes are checked.
    thumb = client_for(None).get(media_services.signed_url(task.pk, "thumb"))
    assert thumb.status_code == 200

    task.refresh_from_db()
    assert (task.width, task.height) == (40, 30)
    annotation = Annotation.objects.get(task=task)
    assert annotation.version == 2 and annotation.author is None
    assert [shape["points"] for shape in annotation.shapes] == [
        [[10, 10], [40, 30]],
        [[1, 1], [5, 5]],
    ]
    first = AnnotationVersion.objects.get(annotation=annotation, version=1)
    assert [shape["points"] for shape in first.shapes] == [shape["points"] for shape in drawn]
    event = AuditEvent.objects.get(action="annotation.fitted")
    assert event.target_id == str(task.pk)
    assert event.data == {"version": 2, "width": 40, "height": 30, "clipped": [1], "removed": [2]}
