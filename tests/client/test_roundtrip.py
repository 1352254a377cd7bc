"""The SDK drives the whole round trip against a live server: a session sign-in makes a token;
with the token, an organization, a project and its labels; a folder uploaded in batches; the
task list walked over its cursors; predictions (pre-labeling); an annotation saved, refused when
stale, submitted and approved; a YOLO export waited for and downloaded, and its zip read."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from defectlab.client import ApiError, Client, box
from defectlab.labeling.models import Task
from tests.client.conftest import Server, defect_image

SPOTS = [(4, 6, 19, 15), (30, 10, 45, 30), (10, 20, 22, 40), (40, 2, 60, 12), (5, 5, 9, 9)]


def signed_in(server: Server) -> Client:
    """A token made through a password session, and a client that uses it."""
    with Client(server.url) as session:
        me = session.login(server.email, server.password)
        assert me.email == server.email
        token = session.tokens.create("round trip")
    assert token.key is not None and token.key.startswith("dl_")
    return Client(server.url, token.key)


def test_the_sdk_round_trip(server: Server, tmp_path: Path) -> None:
    client = signed_in(server)
    assert client.me().email == server.email

    organization = client.organizations.create("Acme Inspection")
    assert organization.role == "owner"
    assert [o.id for o in client.organizations.list()] == [organization.id]
    project = client.projects.create(
        organization,
        "Welds",
        labels=[{"name": "crack", "color": "#e53935", "hotkey": "1"}, "pore"],
        tags=["OK", "NG"],
        allow_self_approval=True,  # a one-person team approves its own work
    )
    dent = client.labels.create(project, "dent", hotkey="3")
    assert [label.name for label in client.labels.list(project)] == ["crack", "pore", "dent"]
    crack = client.projects.get(project).label("crack")

    # A folder of five images (and a file that is no image, left out), in batches of two.
    folder = tmp_path / "images"
    for number, spot in enumerate(SPOTS):
        defect_image(folder / f"panel_{number}.png", spot)
    (folder / "notes.txt").write_text("not an image")
    uploaded = client.tasks.upload(project, [folder], batch_files=2)
    assert uploaded.created == 5
    assert sorted(task.file_name for task in uploaded.tasks) == [
        f"panel_{number}.png" for number in range(5)
    ]
    assert Task.objects.filter(project_id=project.id).count() == 5

    # The list, walked two at a time over its cursors, is every task once, in id order.
    first = client.tasks.page(project, page_size=2)
    assert (len(first.results), first.total) == (2, 5) and first.next_cursor
    walked = list(client.tasks.list(project, page_size=2))
    assert [task.id for task in walked] == sorted(task.id for task in uploaded.tasks)
    assert client.tasks.count(project, status="new") == 5
    by_name = {task.file_name: task for task in walked}

    # Pre-labeling: a model's proposals for every image.
    for number, spot in enumerate(SPOTS):
        client.predictions.create(
            by_name[f"panel_{number}.png"],
            [box(crack, *spot, score=0.9)],
            model_name="dark-spots",
            model_version="1",
        )
    assert client.tasks.count(project, has_prediction=True) == 5
    task = by_name["panel_0.png"]
    (prediction,) = client.predictions.list(task)
    assert prediction.shapes[0]["points"] == [[4, 6], [19, 15]]

    # Label: take the proposal, save, then submit on top of the saved version.
    saved = client.annotations.save(task, prediction.shapes, tags=["NG"])
    assert saved.version == 1 and client.annotations.get(task) == saved
    with pytest.raises(ApiError) as stale:
        client.annotations.save(task, [box(dent, 1, 1, 5, 5)], version=None)
    assert (stale.value.status, stale.value.code) == (409, "stale")
    submitted = client.annotations.submit(
        task,
        [box(crack, *SPOTS[0])],
        version=saved.version,
        proposals=[{"prediction": prediction.id, "index": 0, "fate": "accepted"}],
    )
    assert submitted.version == 2
    assert [v.version for v in client.annotations.versions(task)] == [2, 1]
    assert client.tasks.get(task).status == "submitted"

    review = client.reviews.approve(task, "looks right")
    assert review.verdict == "approve"
    assert client.tasks.get(task).status == "approved"
    assert [r.comment for r in client.reviews.list(task)] == ["looks right"]

    # Export the approved work as YOLO, wait for the job, stream the zip down and read it.
    job = client.exports.start(project, "yolo", only_approved=True)
    finished = client.jobs.wait(job, timeout=120)
    assert finished.succeeded and finished.result["items"] == 1
    path = client.jobs.download(finished, tmp_path / "welds.zip")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        assert {"data.yaml", "images/train/panel_0.png", "labels/train/panel_0.txt"} <= names
        (line,) = archive.read("labels/train/panel_0.txt").decode().splitlines()
        assert "crack" in archive.read("data.yaml").decode()
    class_id, cx, cy, width, height = line.split()
    assert class_id == "0"
    assert float(cx) == pytest.approx((4 + 19) / 2 / 64, abs=1e-4)
    assert float(cy) == pytest.approx((6 + 15) / 2 / 48, abs=1e-4)
    assert float(width) == pytest.approx(15 / 64, abs=1e-4)
    assert float(height) == pytest.approx(9 / 48, abs=1e-4)
    assert [j.id for j in client.jobs.list(project=project)] == [job.id]
    client.close()


def test_a_failing_upload_batch_says_what_landed_before_it(server: Server, tmp_path: Path) -> None:
    with signed_in(server) as client:
        project = client.projects.create(client.organizations.create("Acme"), "Panels")
        for number, spot in enumerate(SPOTS[:3]):
            defect_image(tmp_path / f"a{number}.png", spot)
        (tmp_path / "b_broken.png").write_bytes(b"not a png at all")
        defect_image(tmp_path / "c.png", SPOTS[3])
        with pytest.raises(ApiError) as failed:
            client.tasks.upload(project, [tmp_path], batch_files=2)
    error = failed.value
    assert error.status == 400 and "b_broken.png" in error.message
    assert error.uploaded.created == 2  # a0, a1; the batch a2 + b_broken.png landed not at all
    assert [path.name for path in error.remaining] == ["a2.png", "b_broken.png", "c.png"]
    assert sorted(Task.objects.values_list("file_name", flat=True)) == ["a0.png", "a1.png"]


def test_errors_carry_the_servers_code_message_and_status(server: Server) -> None:
    with signed_in(server) as client:
        errors_of(client, server)


def errors_of(client: Client, server: Server) -> None:
    organization = client.organizations.create("Acme")
    with pytest.raises(ApiError) as missing:
        client.tasks.get(987654321)
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(ApiError) as invalid:
        client.projects.create(organization, "Bad", shape_types=["hexagon"])
    assert invalid.value.status == 400 and invalid.value.message
    with Client(server.url, "dl_not-a-token") as stranger, pytest.raises(ApiError) as refused:
        stranger.projects.list()
    assert refused.value.status == 401
    with Client(server.url, language="zh-hans") as chinese, pytest.raises(ApiError) as login:
        chinese.login(server.email, "wrong password")
    assert login.value.status in (400, 403)
    assert any("\u4e00" <= char <= "\u9fff" for char in login.value.message)


def test_a_session_writes_with_its_csrf_token(server: Server) -> None:
    """A password session (no token) creates and changes things: its writes carry the CSRF
    token from the session's cookie, which the server checks."""
    with Client(server.url) as client:
        client.login(server.email, server.password)
        organization = client.organizations.create("Session Org")
        renamed = client.organizations.rename(organization, "Session Org 2")
        assert renamed.name == "Session Org 2"
        client.logout()
        with pytest.raises(ApiError) as signed_out:
            client.organizations.list()
        assert signed_out.value.status in (401, 403)
