"""The workspace page hands the canvas everything it needs, and only to members who may use it."""

from __future__ import annotations

import json

from django.test import Client

from defectlab.labeling import workflow
from defectlab.labeling.models import Task, TaskStatus
from defectlab.tenancy.models import Membership, Role, User
from tests.conftest import Tenant, annotate, box


def signed_in(user: User, language: str = "en") -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(user)
    return client


def config_of(html: str) -> dict:  # type: ignore[type-arg]
    raw = html.split('<script id="workspace-config" type="application/json">')[1].split(
        "</script>"
    )[0]
    return json.loads(raw)


def test_start_labeling_reserves_a_task_and_opens_it(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.ANNOTATOR))
    response = client.post(f"/projects/{tenant.project.pk}/label/")
    task = Task.objects.get(lock_owner=tenant.user(Role.ANNOTATOR))
    assert response["Location"] == f"/tasks/{task.pk}/annotate/"
    assert task.status == TaskStatus.IN_PROGRESS


def test_start_labeling_passes_over_a_task_you_skipped_on_another_device(tenant: Tenant) -> None:
    annotator = tenant.user(Role.ANNOTATOR)
    workflow.next_task(tenant.project, annotator)
    phone = signed_in(annotator)  # the canvas's Skip button, in another browser
    assert phone.post(f"/api/tasks/{tenant.tasks[0].pk}/release/").status_code == 204

    response = signed_in(annotator).post(f"/projects/{tenant.project.pk}/label/")

    assert response["Location"] == f"/tasks/{tenant.tasks[1].pk}/annotate/"


def test_workspace_config_carries_the_task_schema_annotation_and_predictions(
    tenant: Tenant,
) -> None:
    task = tenant.tasks[0]
    workflow.add_prediction(
        task, model_name="yolo", model_version="3", shapes=[box(tenant.label) | {"score": 0.8}]
    )
    annotate(tenant, task, submit=False)
    html = (
        signed_in(tenant.user(Role.ANNOTATOR)).get(f"/tasks/{task.pk}/annotate/").content.decode()
    )
    assert '<script type="module" src="/static/defectlab/canvas.js">' in html
    config = config_of(html)
    assert config["task"]["width"] == 64 and config["task"]["imageUrl"].startswith("/media/")
    assert [label["name"] for label in config["project"]["labels"]] == ["scratch", "dent"]
    assert config["annotation"]["version"] == 1 and len(config["annotation"]["shapes"]) == 1
    assert config["predictions"][0]["shapes"][0]["score"] == 0.8
    assert config["api"]["annotation"] == f"/api/tasks/{task.pk}/annotation/"
    assert config["api"]["reserve"] == f"/api/projects/{tenant.project.pk}/next-task/"
    assert config["workspaceUrl"] == "/tasks/{id}/annotate/"
    assert config["csrfToken"] and config["mode"] == "annotate"
    assert config["configUrl"] == "/tasks/{id}/annotate/config/"
    assert config["likelyNext"]["id"] == tenant.tasks[1].pk
    assert config["likelyNext"]["imageUrl"].startswith("/media/")
    assert config["neighbours"] == {"previous": None, "next": tenant.tasks[1].pk}
    assert config["api"]["annotationOf"] == "/api/tasks/{id}/annotation/"


def test_the_workspace_config_comes_as_json_for_in_place_switching(tenant: Tenant) -> None:
    task = tenant.tasks[1]
    page = config_of(
        signed_in(tenant.user(Role.ANNOTATOR)).get(f"/tasks/{task.pk}/annotate/").content.decode()
    )
    response = signed_in(tenant.user(Role.ANNOTATOR)).get(f"/tasks/{task.pk}/annotate/config/")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    config = response.json()
    assert config["task"] == page["task"] | {"imageUrl": config["task"]["imageUrl"]}
    assert config["api"] == page["api"] and config["mode"] == "annotate"
    task.refresh_from_db()
    assert task.lock_owner == tenant.user(Role.ANNOTATOR)  # opening it claims it, as the page does


def test_the_json_config_refuses_with_a_json_error(tenant: Tenant) -> None:
    task = tenant.tasks[0]
    annotate(tenant, task)
    response = signed_in(tenant.user(Role.ANNOTATOR), "zh-hans").get(
        f"/tasks/{task.pk}/review/config/"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert response.json()["error"]["message"] == "您的角色无权执行此操作。"


def test_workspace_strings_follow_the_language(tenant: Tenant) -> None:
    task = tenant.tasks[0]
    english = config_of(
        signed_in(tenant.user(Role.ANNOTATOR)).get(f"/tasks/{task.pk}/annotate/").content.decode()
    )
    chinese = config_of(
        signed_in(tenant.user(Role.ANNOTATOR), "zh-hans")
        .get(f"/tasks/{task.pk}/annotate/")
        .content.decode()
    )
    assert english["strings"].keys() == chinese["strings"].keys()
    differing = [
        key for key in english["strings"] if english["strings"][key] != chinese["strings"][key]
    ]
    assert len(differing) > 0.8 * len(english["strings"])


def test_a_rejected_task_shows_the_reviewers_comment(tenant: Tenant) -> None:
    task = tenant.tasks[0]
    annotate(tenant, task)
    workflow.review(task, tenant.user(Role.REVIEWER), verdict="reject", comment="Missed the dent")
    config = config_of(
        signed_in(tenant.user(Role.ANNOTATOR)).get(f"/tasks/{task.pk}/annotate/").content.decode()
    )
    assert config["reviewComment"] == "Missed the dent"


def test_review_mode_needs_a_reviewer(tenant: Tenant) -> None:
    task = tenant.tasks[0]
    annotate(tenant, task)
    refused = signed_in(tenant.user(Role.ANNOTATOR)).get(f"/tasks/{task.pk}/review/", follow=True)
    assert "Your role does not allow this." in refused.content.decode()
    response = signed_in(tenant.user(Role.REVIEWER)).post(f"/projects/{tenant.project.pk}/review/")
    assert response["Location"] == f"/tasks/{task.pk}/review/"
    config = config_of(
        signed_in(tenant.user(Role.REVIEWER)).get(response["Location"]).content.decode()
    )
    assert config["mode"] == "review" and config["workspaceUrl"] == "/tasks/{id}/review/"
    assert config["api"]["reserve"] == f"/api/projects/{tenant.project.pk}/next-review/"


def test_nothing_left_says_so_on_the_project_page(tenant: Tenant) -> None:
    Task.objects.update(status=TaskStatus.APPROVED)
    page = signed_in(tenant.user(Role.ANNOTATOR)).post(
        f"/projects/{tenant.project.pk}/label/", follow=True
    )
    assert "Nothing is waiting." in page.content.decode()


def test_opening_someone_elses_task_in_the_canvas_neither_locks_it_nor_saves(
    tenant: Tenant,
) -> None:
    """Assignment binds on the canvas page too: an annotator who opens a colleague's task (a
    shared link) must not lock the assignee out, and the canvas's save is refused."""
    assignee = User.objects.create_user("assignee@acme.test", "a-long-password-1")
    Membership.objects.create(organization=tenant.organization, user=assignee, role=Role.ANNOTATOR)
    task = tenant.tasks[0]
    Task.objects.filter(pk=task.pk).update(assignee=assignee)
    intruder = signed_in(tenant.user(Role.ANNOTATOR))

    assert intruder.get(f"/tasks/{task.pk}/annotate/").status_code == 200
    assert intruder.get(f"/tasks/{task.pk}/annotate/config/").status_code == 200

    task.refresh_from_db()
    assert task.lock_owner is None
    saved = intruder.put(
        f"/api/tasks/{task.pk}/annotation/",
        {"version": None, "shapes": [box(tenant.label)], "submit": True},
        content_type="application/json",
    )
    assert saved.status_code == 403
    assert saved.json()["error"]["code"] == "assigned_elsewhere"
    signed_in(assignee).get(f"/tasks/{task.pk}/annotate/")
    task.refresh_from_db()
    assert task.lock_owner == assignee


def test_the_project_page_says_how_many_rejected_tasks_wait_for_you(tenant: Tenant) -> None:
    """A rejected task goes back to its author; the project page says so, with a link to them."""
    annotator, reviewer = tenant.user(Role.ANNOTATOR), tenant.user(Role.REVIEWER)
    page = f"/projects/{tenant.project.pk}/"
    assert 'id="rejected-for-me"' not in signed_in(annotator).get(page).content.decode()
    for task in tenant.tasks[:2]:
        annotate(tenant, task)
        workflow.review(task, reviewer, verdict="reject", comment="边缘没框全")
    html = signed_in(annotator, "zh-hans").get(page).content.decode()
    assert "被驳回、等你修改（2）" in html
    assert f"{page}?status=rejected&amp;assignee=me" in html
    # Not the reviewer's work to fix.
    assert 'id="rejected-for-me"' not in signed_in(reviewer).get(page).content.decode()


def test_the_task_table_says_who_annotated_reviewed_and_holds_each_task(tenant: Tenant) -> None:
    annotator, reviewer = tenant.user(Role.ANNOTATOR), tenant.user(Role.REVIEWER)
    reviewed, held = tenant.tasks[0], tenant.tasks[1]
    annotate(tenant, reviewed)
    workflow.review(reviewed, reviewer, verdict="approve")
    opened = workflow.next_task(tenant.project, annotator)
    assert opened is not None and opened.pk == held.pk
    html = signed_in(tenant.user(Role.MANAGER)).get(f"/projects/{tenant.project.pk}/").content
    rows = {
        row.split('class="file"')[1].split("</a>")[0].rsplit(">", 1)[1]: row
        for row in html.decode().split("<tr>")[2:]
        if 'class="file"' in row
    }

    def people(task: Task) -> list[str]:
        cells = rows[task.file_name].split('class="people">')[1:]
        return [cell.split("</td>")[0].strip() for cell in cells]

    name = lambda user: user.name or user.email  # noqa: E731
    assert people(reviewed) == [name(annotator), name(reviewer), ""]
    assert name(annotator) in people(held)[2] and people(held)[:2] == ["", ""]


def test_the_file_column_header_sorts_and_keeps_the_filters(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.MANAGER))
    page = f"/projects/{tenant.project.pk}/"
    html = client.get(page, {"status": "new", "sort": "file_name"}).content.decode()
    assert 'href="?status=new&amp;sort=-file_name" aria-sort="ascending"' in html
    html = client.get(page, {"status": "new"}).content.decode()
    assert 'href="?status=new&amp;sort=file_name"' in html


def test_review_config_names_the_annotator_and_the_time_they_spent(tenant: Tenant) -> None:
    task = tenant.tasks[0]
    annotator, reviewer = tenant.user(Role.ANNOTATOR), tenant.user(Role.REVIEWER)
    annotator.name = "Li Wei"
    annotator.save()
    first = workflow.save_annotation(
        task, annotator, base_version=None, shapes=[box(tenant.label)], lead_time=50.4
    )
    workflow.save_annotation(
        task,
        annotator,
        base_version=first.version,
        shapes=[box(tenant.label)],
        lead_time=70.2,
        submit=True,
    )
    # A reviewer's corrections are the reviewer's time, not the annotator's.
    workflow.save_annotation(
        task, reviewer, base_version=2, shapes=[box(tenant.label)], lead_time=30.0
    )

    config = config_of(signed_in(reviewer).get(f"/tasks/{task.pk}/review/").content.decode())

    assert config["annotator"] == {"name": "Li Wei", "seconds": 121}
    assert config["api"]["versions"] == f"/api/tasks/{task.pk}/annotation/versions/"
    annotate_config = config_of(
        signed_in(annotator).get(f"/tasks/{tenant.tasks[1].pk}/annotate/").content.decode()
    )
    assert annotate_config["annotator"] is None
