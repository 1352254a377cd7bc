"""The rest of the audit trail is written by the services too: projects, labels, assignments,
deleted tasks, submissions and verdicts, organizations, invites and sessions. The API and the
pages write the same row for one action (action, organization, actor, target and data), and a
service called without any request (as the `defectlab` command does) writes it as well, with no
address."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from django.test import Client
from rest_framework.test import APIClient

from defectlab.cli import main
from defectlab.inference.models import DetectionModel
from defectlab.ingest.services import add_allowed_network
from defectlab.jobs.runner import run_job
from defectlab.labeling import services, workflow
from defectlab.labeling.models import Label, Project, Task
from defectlab.tenancy import services as tenancy
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import AuditEvent, Invite, Membership, Role, User
from tests.conftest import Tenant, annotate, box, make_tasks
from tests.test_audit_trail import api, last_id, only_new_event, page

PASSWORD = "a-long-password-1"  # the tenant fixture's


def row(event: AuditEvent) -> dict[str, Any]:
    """Everything but the target's id: what one action must write whichever door it came in by."""
    return {
        "action": event.action,
        "organization": event.organization_id,
        "actor": event.actor_id,
        "actor_email": event.actor_email,
        "target_type": event.target_type,
        "data": event.data,
        "ip": event.ip,
        "user_agent": event.user_agent,
    }


# ---------------------------------------------------------------------------- projects, labels


def fresh_label(tenant: Tenant, name: str) -> Label:
    return Label.objects.create(
        organization=tenant.organization, project=tenant.project, name=name, color="#00aa00"
    )


def schema_by_api(tenant: Tenant, user: User, verb: str, door: str) -> int:
    """Do ``verb`` through the API; the id of what it acted on."""
    client, project = api(user), tenant.project
    if verb == "create_project":
        body = {"organization": tenant.organization.pk, "name": f"Welds by {door}"}
        return int(client.post("/api/projects/", body, format="json").json()["id"])
    if verb == "update_project":
        answer = client.patch(f"/api/projects/{project.pk}/", {"name": "Welds"}, format="json")
        assert answer.status_code == 200, answer.content
        return project.pk
    if verb == "add_label":
        body = {"name": f"crack by {door}"}
        answer = client.post(f"/api/projects/{project.pk}/labels/", body, format="json")
        return int(answer.json()["id"])
    label = fresh_label(tenant, "crack")
    if verb == "update_label":
        body = {"name": f"hairline by {door}"}
        answer = client.patch(f"/api/labels/{label.pk}/", body, format="json")
        assert answer.status_code == 200, answer.content
    else:
        assert client.delete(f"/api/labels/{label.pk}/").status_code == 204
    return label.pk


def schema_by_page(tenant: Tenant, user: User, verb: str, door: str) -> int:
    """Do ``verb`` on the new-project and settings pages; the id of what it acted on."""
    client, project = page(user), tenant.project
    url = f"/projects/{project.pk}/settings/"
    if verb == "create_project":
        form: dict[str, Any] = {"name": f"Welds by {door}", "shape_types": ["box", "polygon"]}
        client.post(f"/o/{tenant.organization.pk}/projects/new/", form)
        return Project.objects.get(name=form["name"]).pk
    if verb == "update_project":
        form = {"action": "settings", "name": "Welds", "shape_types": ["box", "polygon"]}
        form |= {"tags": "OK\nNG", "instructions": project.instructions}
        assert client.post(url, form).status_code == 302
        return project.pk
    if verb == "add_label":
        client.post(url, {"action": "add_label", "name": f"crack by {door}", "color": "#e53935"})
        return Label.objects.get(name=f"crack by {door}").pk
    label = fresh_label(tenant, "crack")
    form = {"action": verb, "label": label.pk, "name": f"hairline by {door}", "color": "#00aa00"}
    assert client.post(url, form).status_code == 302
    return label.pk


SCHEMA_ACTIONS = {
    "create_project": AuditAction.PROJECT_CREATED,
    "update_project": AuditAction.PROJECT_UPDATED,
    "add_label": AuditAction.LABEL_CREATED,
    "update_label": AuditAction.LABEL_UPDATED,
    "delete_label": AuditAction.LABEL_DELETED,
}


@pytest.mark.parametrize("verb", list(SCHEMA_ACTIONS))
def test_project_and_label_changes_write_the_same_row_from_the_api_and_the_pages(
    tenant: Tenant, verb: str
) -> None:
    manager = tenant.user(Role.MANAGER)
    rows = []
    for door, act in (("api", schema_by_api), ("page", schema_by_page)):
        before = last_id()
        subject = act(tenant, manager, verb, door)
        event = only_new_event(before)
        assert event.target_id == ("" if verb == "delete_label" else str(subject))
        rows.append(row(event))
    assert rows[0] == rows[1]
    assert rows[0]["action"] == SCHEMA_ACTIONS[verb]
    assert rows[0]["actor"] == manager.pk and rows[0]["ip"] == "127.0.0.1"
    assert rows[0]["data"] == ({"name": "crack"} if verb == "delete_label" else {})


def test_assigning_tasks_writes_the_same_row_from_the_api_and_the_project_page(
    tenant: Tenant,
) -> None:
    manager, annotator = tenant.user(Role.MANAGER), tenant.user(Role.ANNOTATOR)
    ids = [task.pk for task in tenant.tasks[:2]]
    rows = []
    for door in ("api", "page"):
        before = last_id()
        if door == "api":
            body = {"tasks": ids, "assignee": annotator.pk}
            url = f"/api/projects/{tenant.project.pk}/assign/"
            assert api(manager).post(url, body, format="json").json() == {"updated": 2}
        else:
            form = {"tasks": ids, "assignee": str(annotator.pk)}
            page(manager).post(f"/projects/{tenant.project.pk}/assign/", form)
        event = only_new_event(before)
        assert event.target_id == str(tenant.project.pk)
        rows.append(row(event))
    assert rows[0] == rows[1]
    assert rows[0]["action"] == AuditAction.TASKS_ASSIGNED
    assert rows[0]["data"] == {"count": 2, "assignee": annotator.pk}


# ---------------------------------------------------------------------------- sessions, invites


def test_signing_in_and_out_writes_the_same_rows_from_the_api_and_the_login_page(
    tenant: Tenant,
) -> None:
    owner = tenant.user(Role.OWNER)
    credentials = {"email": owner.email, "password": PASSWORD}
    rows: dict[str, list[dict[str, Any]]] = {"in": [], "out": []}
    for door in ("api", "page"):
        client: Client = APIClient() if door == "api" else Client()
        client.defaults["HTTP_USER_AGENT"] = "audit-test"
        before = last_id()
        if door == "api":
            assert client.post("/api/auth/login/", credentials, format="json").status_code == 200
        else:
            assert client.post("/login/", credentials).status_code == 302
        rows["in"].append(row(only_new_event(before)))
        before = last_id()
        client.post("/api/auth/logout/" if door == "api" else "/logout/")
        rows["out"].append(row(only_new_event(before)))
    for name, action in (("in", AuditAction.LOGIN), ("out", AuditAction.LOGOUT)):
        assert rows[name][0] == rows[name][1]
        assert rows[name][0]["action"] == action and rows[name][0]["actor"] == owner.pk
        assert rows[name][0]["ip"] == "127.0.0.1"


def test_signing_out_without_a_session_writes_nothing(tenant: Tenant) -> None:
    before = last_id()
    Client().post("/logout/")
    APIClient().post("/api/auth/logout/")
    assert last_id() == before


def test_joining_by_invite_writes_the_same_row_from_the_api_and_the_invite_page(
    tenant: Tenant,
) -> None:
    rows = []
    for door in ("api", "page"):
        invite, token = tenancy.create_invite(
            tenant.user(Role.OWNER), tenant.organization, Role.ANNOTATOR
        )
        joining = {"email": f"new.{door}@acme.test", "password": "correct horse battery"}
        before = last_id()
        if door == "api":
            client = APIClient(HTTP_USER_AGENT="audit-test")
            body = {"token": token, **joining}
            assert client.post("/api/invites/accept/", body, format="json").status_code == 201
        else:
            client = Client(HTTP_USER_AGENT="audit-test")
            assert client.post(f"/invite/{token}/", joining).status_code == 302
        event = only_new_event(before)
        membership = Membership.objects.get(user__email=joining["email"])
        assert event.actor == membership.user and event.target_id == str(membership.pk)
        assert Invite.objects.get(pk=invite.pk).accepted_by == membership.user
        rows.append({**row(event), "actor": None, "actor_email": None})
    assert rows[0] == rows[1]
    assert rows[0]["action"] == AuditAction.INVITE_ACCEPTED


# ---------------------------------------------------------------------------- without a request


def submitted(tenant: Tenant) -> Task:
    task = tenant.tasks[0]
    annotate(tenant, task)
    return task


# Each action a service performs, called as the command would (no request), and what it writes.
SERVICE_CALLS: dict[str, tuple[AuditAction, Callable[[Tenant, User], Any]]] = {
    "create_organization": (
        AuditAction.ORGANIZATION_CREATED,
        lambda t, actor: tenancy.create_organization("Initech", actor),
    ),
    "rename_organization": (
        AuditAction.ORGANIZATION_UPDATED,
        lambda t, actor: tenancy.rename_organization(actor, t.organization, "Acme Works"),
    ),
    "create_invite": (
        AuditAction.INVITE_CREATED,
        lambda t, actor: tenancy.create_invite(actor, t.organization, Role.REVIEWER),
    ),
    "add_allowed_network": (
        AuditAction.ALLOWLIST_ADDED,
        lambda t, actor: add_allowed_network(t.organization, actor, "10.20.0.0/24"),
    ),
    "create_project": (
        AuditAction.PROJECT_CREATED,
        lambda t, actor: services.create_project(t.organization, actor, name="Welds"),
    ),
    "update_project": (
        AuditAction.PROJECT_UPDATED,
        lambda t, actor: services.update_project(t.project, actor=actor, name="Welds"),
    ),
    "delete_project": (
        AuditAction.PROJECT_DELETED,
        lambda t, actor: services.delete_project(t.project, actor=actor),
    ),
    "add_label": (
        AuditAction.LABEL_CREATED,
        lambda t, actor: services.add_label(t.project, actor=actor, name="crack"),
    ),
    "update_label": (
        AuditAction.LABEL_UPDATED,
        lambda t, actor: services.update_label(t.label, actor=actor, name="hairline"),
    ),
    "delete_label": (
        AuditAction.LABEL_DELETED,
        lambda t, actor: services.delete_label(fresh_label(t, "crack"), actor=actor),
    ),
    "assign_tasks": (
        AuditAction.TASKS_ASSIGNED,
        lambda t, actor: services.assign_tasks(t.project, [t.tasks[0].pk], None, actor=actor),
    ),
    "delete_task": (
        AuditAction.TASK_DELETED,
        lambda t, actor: services.delete_task(t.tasks[0], actor=actor),
    ),
    "submit": (
        AuditAction.TASK_SUBMITTED,
        lambda t, actor: workflow.save_annotation(
            t.tasks[1], actor, base_version=None, shapes=[box(t.label)], submit=True
        ),
    ),
    "approve": (
        AuditAction.TASK_APPROVED,
        lambda t, actor: workflow.review(submitted(t), actor, verdict="approve"),
    ),
    "reject": (
        AuditAction.TASK_REJECTED,
        lambda t, actor: workflow.review(submitted(t), actor, verdict="reject", comment="Redo"),
    ),
}


@pytest.mark.parametrize("name", list(SERVICE_CALLS))
def test_a_service_called_without_a_request_writes_its_row_as_the_actor(
    tenant: Tenant, name: str
) -> None:
    action, call = SERVICE_CALLS[name]
    actor = tenant.user(Role.OWNER)
    before = last_id()
    call(tenant, actor)
    [event] = AuditEvent.objects.filter(pk__gt=before, action=action)
    assert event.actor == actor and event.actor_email == actor.email
    assert (event.ip, event.user_agent) == (None, "")
    assert event.organization_id is not None


def test_deleting_a_task_or_a_project_writes_the_same_row_through_the_api_and_the_service(
    tenant: Tenant,
) -> None:
    owner = tenant.user(Role.OWNER)
    rows = []
    for door in ("api", "service"):
        (task,) = make_tasks(tenant.project, 1)
        task.file_name = "part_7.png"
        task.save(update_fields=["file_name"])
        before = last_id()
        if door == "api":
            assert api(owner).delete(f"/api/tasks/{task.pk}/").status_code == 204
        else:
            services.delete_task(task, actor=owner)
        event = only_new_event(before)
        assert event.data == {"task": task.pk, "file_name": "part_7.png"}
        rows.append({**row(event), "data": None, "ip": None, "user_agent": None})
    assert rows[0] == rows[1]
    for door in ("api", "service"):
        project = services.create_project(tenant.organization, owner, name="Welds")
        make_tasks(project, 2)
        before = last_id()
        if door == "api":
            answer = api(owner).delete(f"/api/projects/{project.pk}/")
            assert answer.status_code == 202  # the deletion job's
            job_id = answer.json()["id"]
        else:
            job_id = services.delete_project(project, actor=owner).pk
        event = only_new_event(before)
        assert (event.action, event.data, event.actor) == (
            "project.deleted",
            {"name": "Welds"},
            owner,
        )
        run_job(job_id)
        assert not Task.objects.filter(project_id=project.pk).exists()


def test_the_demo_command_writes_the_organization_and_project_rows_as_its_owner(
    db: None, queued: list[int]
) -> None:
    owner = User.objects.create_user("admin@example.com", "x" * 12)
    result = CliRunner().invoke(main, ["demo", "--email", owner.email, "--images", "1"])
    assert result.exit_code == 0, result.output
    project = Project.objects.get()
    model = DetectionModel.objects.get()
    version = model.versions.get()
    events = AuditEvent.objects.order_by("id")
    assert [(event.action, event.target_id, event.actor) for event in events] == [
        ("organization.created", str(project.organization_id), owner),
        ("project.created", str(project.pk), owner),
        # The demo detector: registered, checked (by its job: no actor), named, mapped, run.
        ("model.created", str(model.pk), owner),
        ("model.version_uploaded", str(version.pk), owner),
        ("model.version_checked", str(version.pk), None),
        ("model.alias_moved", str(model.pk), owner),
        ("project.model_changed", str(project.pk), owner),
        ("project.preannotation_started", str(project.pk), owner),
    ]
    assert all(event.ip is None for event in events)


# ---------------------------------------------------------------------------- images in


def test_uploading_and_importing_by_reference_write_the_same_rows_from_the_api_and_the_data_page(
    tenant: Tenant,
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.conftest import jpeg_bytes

    manager = tenant.user(Role.MANAGER)
    project = tenant.project.pk
    for action in (AuditAction.TASKS_UPLOADED, AuditAction.TASKS_IMPORTED):
        rows = []
        for door in ("api", "page"):
            before = last_id()
            image = SimpleUploadedFile("part.jpg", jpeg_bytes(), content_type="image/jpeg")
            if action == AuditAction.TASKS_UPLOADED and door == "api":
                url = f"/api/projects/{project}/upload/"
                assert api(manager).post(url, {"files": [image]}).status_code == 201
            elif action == AuditAction.TASKS_UPLOADED:
                form = {"action": "upload", "files": [image]}
                page(manager).post(f"/projects/{project}/data/", form)
            elif door == "api":
                body = {"tasks": ["https://cam.example/1.jpg", "https://cam.example/2.jpg"]}
                url = f"/api/projects/{project}/import/"
                assert api(manager).post(url, body, format="json").status_code == 201
            else:
                form = {
                    "action": "import_urls",
                    "keep": "reference",
                    "urls": "https://cam.example/1.jpg\nhttps://cam.example/2.jpg",
                }
                page(manager).post(f"/projects/{project}/data/", form)
            event = only_new_event(before)
            assert event.target_id == str(project)
            rows.append(row(event))
        assert rows[0] == rows[1]
        assert rows[0]["action"] == action and rows[0]["actor"] == manager.pk
        assert rows[0]["data"] == {"count": 1 if action == AuditAction.TASKS_UPLOADED else 2}
