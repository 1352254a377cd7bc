"""One audit trail: the same action done through the API, a page or the `defectlab` command writes
the same row (one action name, one payload shape, the address it came from), and every name
written anywhere is a member of `AuditAction`."""

from __future__ import annotations

import ast
import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from django.test import Client
from rest_framework.test import APIClient

import defectlab
from defectlab.cli import main
from defectlab.ingest.models import AllowedNetwork
from defectlab.jobs.models import Job, JobState
from defectlab.media.models import StorageConnection
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import AuditEvent, Membership, Role, User
from defectlab.tenancy.services import create_invite, record
from tests.conftest import Tenant, client_for
from tests.web.test_pages import signed_in

PASSWORD = "a long old secret 1"
SRC = Path(defectlab.__file__).resolve().parent  # the code under test
DOCS = Path(__file__).resolve().parents[1] / "docs"


def shape(event: AuditEvent) -> dict[str, Any]:
    """What must not depend on the door an action came through."""
    return {
        "action": event.action,
        "organization": event.organization_id,
        "actor": event.actor_email,
        "target_type": event.target_type,
        "data_keys": sorted(event.data),
    }


def only_new_event(before: int) -> AuditEvent:
    [event] = AuditEvent.objects.filter(pk__gt=before).order_by("id")
    return event


def last_id() -> int:
    latest = AuditEvent.objects.order_by("-id").first()
    return latest.pk if latest else 0


def api(user: User) -> APIClient:
    client = client_for(user)
    client.defaults["HTTP_USER_AGENT"] = "audit-test"
    return client


def page(user: User) -> Client:
    client = signed_in(user)
    client.defaults["HTTP_USER_AGENT"] = "audit-test"
    return client


# ---------------------------------------------------------------------------- jobs


def failed_job(tenant: Tenant, state: str) -> Job:
    return Job.objects.create(
        organization=tenant.organization,
        project=tenant.project,
        kind="url_import",
        started_by=tenant.user(Role.OWNER),
        state=state,
    )


JOB_ACTIONS = {
    "cancel": (JobState.RUNNING, AuditAction.JOB_CANCELLED),
    "retry": (JobState.FAILED, AuditAction.JOB_RETRIED),
}


@pytest.mark.parametrize("verb", list(JOB_ACTIONS))
def test_cancel_and_retry_write_one_row_from_the_api_and_from_the_jobs_page(
    tenant: Tenant, verb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("defectlab.jobs.services.send", lambda job_id: None)  # no worker here
    state, expected = JOB_ACTIONS[verb]
    owner = tenant.user(Role.OWNER)
    shapes = []
    for door in ("api", "page"):
        job = failed_job(tenant, state)
        before = last_id()
        if door == "api":
            assert api(owner).post(f"/api/jobs/{job.pk}/{verb}/").status_code == 200
        else:
            assert page(owner).post(f"/jobs/{job.pk}/{verb}/").status_code == 302
        event = only_new_event(before)
        assert event.target_id == str(job.pk)
        assert (event.ip, event.user_agent) == ("127.0.0.1", "audit-test")
        shapes.append(shape(event))
    assert shapes[0] == shapes[1]
    assert shapes[0]["action"] == expected


# ---------------------------------------------------------------------------- storages


def storage_form(name: str) -> dict[str, Any]:
    # Creating, syncing (the job is only queued) and removing a connection never reach the
    # store, so nothing listens at this loopback address.
    return {
        "name": name,
        "role": "source",
        "endpoint_url": "http://127.0.0.1:9",
        "region": "us-east-1",
        "bucket": "panels",
        "access_key": "AKIADEFECTLABTEST000",
        "secret_key": "defectlab-test-secret-key",
    }


def storage_by_api(tenant: Tenant, user: User, verb: str, name: str) -> None:
    client = api(user)
    if verb == "create":
        body = {"project": tenant.project.pk, **storage_form(name)}
        assert client.post("/api/storages/", body, format="json").status_code == 201
        return
    storage = StorageConnection.objects.get(name=name)
    if verb == "sync":
        assert client.post(f"/api/storages/{storage.pk}/sync/").status_code == 202
    else:
        assert client.delete(f"/api/storages/{storage.pk}/").status_code == 204


def storage_by_page(tenant: Tenant, user: User, verb: str, name: str) -> None:
    url = f"/projects/{tenant.project.pk}/storages/"
    client = page(user)
    if verb == "create":
        form = {"action": "add", **storage_form(name), "path_style": "on", "sse": "none"}
        assert client.post(url, {**form, "media_mode": "presign"}).status_code == 302
        return
    storage = StorageConnection.objects.get(name=name)
    action = "sync" if verb == "sync" else "delete"
    assert client.post(url, {"action": action, "storage": storage.pk}).status_code == 302


STORAGE_ACTIONS = {
    "create": AuditAction.STORAGE_CREATED,
    "sync": AuditAction.STORAGE_SYNC_STARTED,
    "delete": AuditAction.STORAGE_DELETED,
}


@pytest.mark.parametrize("verb", list(STORAGE_ACTIONS))
def test_storage_changes_write_the_same_row_from_the_api_and_from_the_storages_page(
    tenant: Tenant, verb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("defectlab.jobs.services.send", lambda job_id: None)
    manager = tenant.user(Role.MANAGER)
    shapes = []
    for door, act in (("api", storage_by_api), ("page", storage_by_page)):
        name = f"camera by {door}"
        if verb != "create":
            storage_by_api(tenant, manager, "create", name)
        before = last_id()
        act(tenant, manager, verb, name)
        event = only_new_event(before)
        assert event.target_type == "storageconnection" and event.target_id
        assert event.data.get("name", name) == name
        assert (event.ip, event.user_agent) == ("127.0.0.1", "audit-test")
        shapes.append(shape(event))
    assert shapes[0] == shapes[1]
    assert shapes[0]["action"] == STORAGE_ACTIONS[verb]


# ---------------------------------------------------------------------------- the allowlist


def test_the_allowlist_page_and_api_write_the_same_rows(tenant: Tenant) -> None:
    admin = tenant.user(Role.ADMIN)
    organization = tenant.organization.pk
    added, removed = [], []
    for door, value in (("api", "10.20.0.7"), ("page", "10.20.0.8")):
        before = last_id()
        if door == "api":
            body = {"organization": organization, "value": value, "note": "line 3"}
            assert api(admin).post("/api/allowlist/", body, format="json").status_code == 201
        else:
            page(admin).post(f"/o/{organization}/network/", {"value": value, "note": "line 3"})
        added.append(only_new_event(before))
        entry = AllowedNetwork.objects.get(value=f"{value}/32")
        before = last_id()
        if door == "api":
            assert api(admin).delete(f"/api/allowlist/{entry.pk}/").status_code == 204
        else:
            page(admin).post(f"/o/{organization}/network/", {"action": "delete", "entry": entry.pk})
        removed.append(only_new_event(before))
    for events, action in ((added, AuditAction.ALLOWLIST_ADDED), (removed, "allowlist.removed")):
        assert shape(events[0]) == shape(events[1])
        assert events[0].action == action and events[1].target_id
    assert added[1].data == {"value": "10.20.0.8/32", "note": "line 3"}


# ---------------------------------------------------------------------------- data in and out


def dataset_zip() -> io.BytesIO:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("classes.txt", "scratch\n")
    archive.seek(0)
    archive.name = "panels.zip"
    return archive


URLS = "http://10.0.0.5/a.png\nhttp://10.0.0.6/b.png\n"


def start_by_api(tenant: Tenant, user: User, what: str, tmp_path: Path) -> None:
    client = api(user)
    base = f"/api/projects/{tenant.project.pk}"
    if what == "export":
        answer = client.post(f"{base}/export/", {"format": "yolo"}, format="json")
    elif what == "url_import":
        answer = client.post(f"{base}/import-urls/", {"urls": URLS.split()}, format="json")
    else:
        fields = {"file": dataset_zip(), "format": "yolo"}
        answer = client.post(f"{base}/import-dataset/", fields, format="multipart")
    assert answer.status_code == 202, answer.content


def start_by_page(tenant: Tenant, user: User, what: str, tmp_path: Path) -> None:
    url = f"/projects/{tenant.project.pk}/data/"
    if what == "export":
        form: dict[str, Any] = {"action": "export", "format": "yolo", "tasks": "labeled"}
    elif what == "url_import":
        form = {"action": "import_urls", "urls": URLS}
    else:
        form = {"action": "import_dataset", "format": "yolo", "archive": dataset_zip()}
    answer = page(user).post(url, form)
    assert answer.status_code == 302 and answer["Location"].startswith("/jobs/")


def start_by_command(tenant: Tenant, user: User, what: str, tmp_path: Path) -> None:
    project = str(tenant.project.pk)
    if what == "export":
        args = ["export", project, "--format", "yolo", "--out", str(tmp_path / "out.zip")]
    else:
        listing = tmp_path / "cameras.txt"
        listing.write_text(URLS)
        args = ["import-urls", project, str(listing)]
    result = CliRunner().invoke(main, [*args, "--as", user.email], prog_name="defectlab")
    assert result.exit_code == 0, result.output


STARTS: dict[str, tuple[AuditAction, list[Callable[..., None]]]] = {
    "export": (
        AuditAction.PROJECT_EXPORT_STARTED,
        [start_by_api, start_by_page, start_by_command],
    ),
    "url_import": (
        AuditAction.TASKS_URL_IMPORT_STARTED,
        [start_by_api, start_by_page, start_by_command],
    ),
    "dataset_import": (AuditAction.PROJECT_DATASET_IMPORT_STARTED, [start_by_api, start_by_page]),
}


# The command runs its job in a thread with its own connection: the data must be committed.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("what", list(STARTS))
def test_starting_a_job_writes_the_same_row_from_the_api_the_page_and_the_command(
    tenant: Tenant, what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("defectlab.jobs.services.send", lambda job_id: None)  # the command runs it
    action, doors = STARTS[what]
    owner = tenant.user(Role.OWNER)
    events = []
    for start in doors:
        before = last_id()
        start(tenant, owner, what, tmp_path)
        event = only_new_event(before)
        job = Job.objects.filter(project=tenant.project).latest("id")
        assert event.data["job"] == job.pk
        assert event.target_id == str(tenant.project.pk)
        events.append(event)
    assert [shape(event) for event in events] == [shape(events[0])] * len(doors)
    assert events[0].action == action
    assert events[0].ip == "127.0.0.1" == events[1].ip
    if len(events) == 3:
        assert events[2].ip is None and events[2].user_agent == ""  # no request on the command


# ---------------------------------------------------------------------------- the names


def test_an_action_name_outside_the_enumeration_is_refused(db: None) -> None:
    with pytest.raises(ValueError):
        record(None, "job.cancel")  # type: ignore[arg-type]
    assert not AuditEvent.objects.exists()


def test_every_audit_row_in_the_source_is_written_by_record_with_a_member_of_the_enumeration() -> (
    None
):
    """Statically: no call to ``record`` names its action with a bare string, and only
    ``record`` creates audit rows."""
    strays = []
    for path in SRC.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            where = f"{path.relative_to(SRC)}:{node.lineno}"
            if name == "record" and len(node.args) >= 2:
                action = node.args[1]
                if isinstance(action, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                    strays.append(where)
            if (
                name == "create"
                and isinstance(func, ast.Attribute)
                and "AuditEvent" in ast.unparse(func.value)
                and path.name != "services.py"
            ):
                strays.append(where)
    assert strays == []
    assert all(member.value.count(".") <= 1 for member in AuditAction)


def test_the_documented_actions_are_the_enumeration() -> None:
    docs = (DOCS / "api.md").read_text()
    section = docs.split("## Audit trail", 1)[1].split("\n## ", 1)[0]
    quoted = set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)?)`", section))
    names = {member.value for member in AuditAction}
    assert names <= quoted
    assert {word for word in quoted if "." in word} == {name for name in names if "." in name}


# ---------------------------------------------------------------------------- members


def members_by_api(tenant: Tenant, user: User, verb: str, subject: Any) -> None:
    client = api(user)
    if verb == "invite":
        body = {"role": Role.ANNOTATOR, "email": "new@acme.test"}
        url = f"/api/organizations/{tenant.organization.pk}/invites/"
        assert client.post(url, body, format="json").status_code == 201
    elif verb == "role":
        body = {"role": Role.REVIEWER}
        assert (
            client.patch(f"/api/memberships/{subject.pk}/", body, format="json").status_code == 200
        )
    elif verb == "remove":
        assert client.delete(f"/api/memberships/{subject.pk}/").status_code == 204
    else:
        assert client.delete(f"/api/invites/{subject.pk}/").status_code == 204


def members_by_page(tenant: Tenant, user: User, verb: str, subject: Any) -> None:
    url = f"/o/{tenant.organization.pk}/members/"
    form: dict[str, Any] = {"action": verb}
    if verb == "invite":
        form |= {"role": Role.ANNOTATOR, "email": "new@acme.test"}
    elif verb == "role":
        form |= {"membership": subject.pk, "role": Role.REVIEWER}
    elif verb == "remove":
        form |= {"membership": subject.pk}
    else:
        form |= {"invite": subject.pk}
    answer = page(user).post(url, form)
    assert answer.status_code in (200, 302)


MEMBER_ACTIONS = {
    "invite": AuditAction.INVITE_CREATED,
    "role": AuditAction.MEMBER_ROLE_CHANGED,
    "remove": AuditAction.MEMBER_REMOVED,
    "revoke": AuditAction.INVITE_REVOKED,
}


@pytest.mark.parametrize("verb", list(MEMBER_ACTIONS))
def test_member_changes_write_the_same_row_from_the_api_and_from_the_members_page(
    tenant: Tenant, verb: str
) -> None:
    owner = tenant.user(Role.OWNER)
    shapes = []
    for number, door in enumerate((members_by_api, members_by_page)):
        subject: Any = None
        if verb in ("role", "remove"):
            person = User.objects.create_user(f"worker{number}@acme.test", "x" * 12)
            subject = Membership.objects.create(
                organization=tenant.organization, user=person, role=Role.ANNOTATOR
            )
        elif verb == "revoke":
            subject, _token = create_invite(owner, tenant.organization, Role.ANNOTATOR)
        before = last_id()
        door(tenant, owner, verb, subject)
        event = only_new_event(before)
        assert (event.ip, event.user_agent) == ("127.0.0.1", "audit-test")
        shapes.append(shape(event))
    assert shapes[0] == shapes[1]
    assert shapes[0]["action"] == MEMBER_ACTIONS[verb]


# ---------------------------------------------------------------------------- the account


@pytest.mark.parametrize("verb", ["password", "token"])
def test_account_changes_write_the_same_row_from_the_api_and_from_the_account_page(
    tenant: Tenant, verb: str
) -> None:
    events = []
    for number, door in enumerate(("api", "page")):
        user = User.objects.create_user(f"person{number}@acme.test", PASSWORD)
        before = last_id()
        new = "another long secret 7"
        if door == "api" and verb == "password":
            body = {"current_password": PASSWORD, "new_password": new}
            assert api(user).post("/api/account/password/", body, format="json").status_code == 204
        elif door == "api":
            assert api(user).post("/api/tokens/", {"name": "ci"}, format="json").status_code == 201
        elif verb == "password":
            page(user).post("/account/", {"action": "password", "current": PASSWORD, "new": new})
        else:
            page(user).post("/account/", {"action": "create_token", "name": "ci"})
        event = only_new_event(before)
        assert event.actor == user and (event.ip, event.user_agent) == ("127.0.0.1", "audit-test")
        events.append(event)
    assert {key: value for key, value in shape(events[0]).items() if key != "actor"} == {
        key: value for key, value in shape(events[1]).items() if key != "actor"
    }


# ---------------------------------------------------------------------------- evaluations


def test_starting_and_deleting_an_evaluation_write_the_same_rows_from_the_api_and_the_pages(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from defectlab.insight.models import Evaluation
    from defectlab.labeling.models import Task, TaskStatus
    from tests.test_role_matrix import _ready_model

    monkeypatch.setattr("defectlab.jobs.services.send", lambda job_id: None)  # no worker here
    owner = tenant.user(Role.OWNER)
    model = _ready_model(tenant)
    Task.objects.filter(pk=tenant.tasks[0].pk).update(status=TaskStatus.APPROVED)
    started, deleted = [], []
    for door in ("api", "page"):
        before = last_id()
        if door == "api":
            url = f"/api/projects/{tenant.project.pk}/evaluations/"
            body = {"model": model.pk, "version": 1}
            assert api(owner).post(url, body, format="json").status_code == 202
        else:
            url = f"/projects/{tenant.project.pk}/evaluations/"
            assert page(owner).post(url, {"run": f"{model.pk}:version:1"}).status_code == 302
        event = only_new_event(before)
        assert (event.ip, event.user_agent) == ("127.0.0.1", "audit-test")
        started.append(shape(event))
        evaluation = Evaluation.objects.order_by("-id").first()
        assert evaluation is not None
        before = last_id()
        if door == "api":
            assert api(owner).delete(f"/api/evaluations/{evaluation.pk}/").status_code == 204
        else:
            assert page(owner).post(f"/evaluations/{evaluation.pk}/delete/").status_code == 302
        # Deleting a queued evaluation cancels its job first (`job.cancelled`), then the row.
        rows = AuditEvent.objects.filter(pk__gt=before).order_by("id")
        assert [row.action for row in rows] == [
            AuditAction.JOB_CANCELLED,
            AuditAction.EVALUATION_DELETED,
        ]
        deleted.append(shape(rows.last()))  # type: ignore[arg-type]
    assert started[0] == started[1] and started[0]["action"] == AuditAction.EVALUATION_STARTED
    assert deleted[0] == deleted[1]
