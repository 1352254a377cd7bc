"""The task list of a project (filters and keyset cursors) and importing tasks by reference."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from defectlab.labeling import services, tasklist, workflow
from defectlab.labeling.models import Annotation, Label, Project, Task, TaskStatus
from defectlab.params import encode_cursor
from defectlab.tenancy.models import AuditEvent, Role, User
from tests.conftest import Tenant, annotate, box, client_for

# ---------------------------------------------------------------------------- helpers


def tasks_url(project: Project) -> str:
    return f"/api/projects/{project.pk}/tasks/"


def listed(user: User, project: Project, **params: Any) -> list[int]:
    response = client_for(user).get(tasks_url(project), params)
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def walk(client: Any, project: Project, params: dict[str, Any], page_size: int) -> list[int]:
    """Every id the list hands out, following next_cursor page after page."""
    ids: list[int] = []
    cursor = None
    for _page in range(Task.objects.filter(project=project).count() + 2):
        query = {**params, "page_size": page_size}
        if cursor is not None:
            query["cursor"] = cursor
        response = client.get(tasks_url(project), query)
        assert response.status_code == 200, response.content
        body = response.json()
        ids += [row["id"] for row in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            assert len(body["results"]) <= page_size
            return ids
        assert len(body["results"]) == page_size  # only a full page promises more
    raise AssertionError("the cursor never ran out")


def import_references(project: Project, count: int) -> list[Task]:
    before = set(Task.objects.filter(project=project).values_list("id", flat=True))
    services.import_references(
        project,
        [
            {"image": f"https://cdn.test/{index}.jpg", "width": 64, "height": 48}
            for index in range(count)
        ],
    )
    return list(Task.objects.filter(project=project).exclude(id__in=before).order_by("id"))


def all_ids(project: Project) -> list[int]:
    return list(Task.objects.filter(project=project).order_by("id").values_list("id", flat=True))


def error_of(response: Any) -> dict[str, Any]:
    return response.json()["error"]


def save(user: User, task: Task, shapes: list[dict[str, Any]], *, submit: bool = False) -> None:
    current = Annotation.objects.filter(task=task).first()
    workflow.save_annotation(
        task,
        user,
        base_version=current.version if current else None,
        shapes=shapes,
        submit=submit,
    )


# ---------------------------------------------------------------------------- filters


def test_status_filter_takes_a_comma_separated_list(tenant: Tenant) -> None:
    annotator = tenant.user(Role.ANNOTATOR)
    submitted, in_progress, new = tenant.tasks
    save(annotator, submitted, [box(tenant.label)], submit=True)
    save(annotator, in_progress, [box(tenant.label)])

    assert listed(annotator, tenant.project, status="submitted,in_progress") == [
        submitted.pk,
        in_progress.pk,
    ]
    assert listed(annotator, tenant.project, status="new") == [new.pk]
    assert listed(annotator, tenant.project, status="approved,rejected") == []
    assert listed(annotator, tenant.project, status="") == all_ids(tenant.project)


@pytest.mark.parametrize("status", ["finished", "new,done", "NEW", "new;submitted"])
def test_an_unknown_status_is_refused(tenant: Tenant, status: str) -> None:
    response = client_for(tenant.user(Role.ANNOTATOR)).get(
        tasks_url(tenant.project), {"status": status}
    )

    assert response.status_code == 400
    assert error_of(response)["message"].startswith("Unknown status")


def test_assignee_filter_takes_an_id_me_or_none(tenant: Tenant) -> None:
    annotator, reviewer = tenant.user(Role.ANNOTATOR), tenant.user(Role.REVIEWER)
    mine, theirs, nobodys = tenant.tasks
    Task.objects.filter(pk=mine.pk).update(assignee=annotator)
    Task.objects.filter(pk=theirs.pk).update(assignee=reviewer)

    assert listed(annotator, tenant.project, assignee="me") == [mine.pk]
    assert listed(reviewer, tenant.project, assignee="me") == [theirs.pk]
    assert listed(annotator, tenant.project, assignee=reviewer.pk) == [theirs.pk]
    assert listed(annotator, tenant.project, assignee="none") == [nobodys.pk]
    assert listed(annotator, tenant.project, assignee=tenant.user(Role.OWNER).pk) == []


def test_has_annotation_and_has_prediction_filter_both_ways(tenant: Tenant) -> None:
    annotator = tenant.user(Role.ANNOTATOR)
    annotated, predicted, neither = tenant.tasks
    save(annotator, annotated, [box(tenant.label)])
    workflow.add_prediction(
        predicted, model_name="m", model_version="1", shapes=[{**box(tenant.label), "score": 0.5}]
    )

    assert listed(annotator, tenant.project, has_annotation="true") == [annotated.pk]
    assert listed(annotator, tenant.project, has_annotation="false") == [predicted.pk, neither.pk]
    assert listed(annotator, tenant.project, has_prediction="1") == [predicted.pk]
    assert listed(annotator, tenant.project, has_prediction="no") == [annotated.pk, neither.pk]
    assert listed(annotator, tenant.project, has_annotation="false", has_prediction="false") == [
        neither.pk
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [("has_prediction", "maybe"), ("has_annotation", "2"), ("has_prediction", "t")],
)
def test_a_filter_that_is_not_true_or_false_is_refused(
    tenant: Tenant, name: str, value: str
) -> None:
    response = client_for(tenant.user(Role.ANNOTATOR)).get(tasks_url(tenant.project), {name: value})

    assert response.status_code == 400
    assert error_of(response)["message"] == f"{name} must be true or false."


@pytest.mark.parametrize("name", ["assignee", "label", "page_size"])
def test_a_filter_that_is_not_a_whole_number_is_refused(tenant: Tenant, name: str) -> None:
    response = client_for(tenant.user(Role.ANNOTATOR)).get(tasks_url(tenant.project), {name: "x1"})

    assert response.status_code == 400
    assert error_of(response)["message"] == f"{name} must be a whole number."


def test_label_filter_finds_tasks_whose_current_annotation_uses_the_label(tenant: Tenant) -> None:
    annotator = tenant.user(Role.ANNOTATOR)
    dent = tenant.project.labels.get(name="dent")
    scratched, dented, both = tenant.tasks
    save(annotator, scratched, [box(tenant.label)])
    save(annotator, dented, [box(tenant.label)])
    save(annotator, dented, [box(dent)])  # no longer scratched
    save(annotator, both, [box(dent), box(tenant.label), box(tenant.label, 1, 1, 2, 2)])

    assert listed(annotator, tenant.project, label=tenant.label.pk) == [scratched.pk, both.pk]
    assert listed(annotator, tenant.project, label=dent.pk) == [dented.pk, both.pk]


def test_label_filter_with_another_projects_label_finds_nothing(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    save(other_tenant.user(Role.ANNOTATOR), other_tenant.tasks[0], [box(other_tenant.label)])
    save(tenant.user(Role.ANNOTATOR), tenant.tasks[0], [box(tenant.label)])

    assert listed(tenant.user(Role.ANNOTATOR), tenant.project, label=other_tenant.label.pk) == []


@pytest.mark.parametrize("name", ["label", "assignee"])
def test_an_id_beyond_any_database_id_finds_nothing_rather_than_failing(
    tenant: Tenant, name: str
) -> None:
    client = client_for(tenant.user(Role.ANNOTATOR))
    client.raise_request_exception = False

    response = client.get(tasks_url(tenant.project), {name: str(10**30)})

    assert response.status_code != 500
    assert response.status_code == 400 or response.json()["results"] == []


# ---------------------------------------------------------------------------- cursors


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 8])
def test_cursor_pages_walk_every_task_exactly_once_in_id_order(
    tenant: Tenant, page_size: int
) -> None:
    import_references(tenant.project, 4)  # 7 tasks: pages of 2 are 2+2+2+1, of 7 exactly one
    client = client_for(tenant.user(Role.ANNOTATOR))

    assert walk(client, tenant.project, {}, page_size) == all_ids(tenant.project)


def test_page_size_2_hands_out_full_pages_and_ends_with_a_null_cursor(tenant: Tenant) -> None:
    import_references(tenant.project, 3)  # 6 tasks: three full pages and no empty fourth one
    client = client_for(tenant.user(Role.ANNOTATOR))
    url, pages, cursor = tasks_url(tenant.project), [], None

    while True:
        body = client.get(url, {"page_size": 2, **({"cursor": cursor} if cursor else {})}).json()
        pages.append([row["id"] for row in body["results"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break

    ids = all_ids(tenant.project)
    assert pages == [ids[0:2], ids[2:4], ids[4:6]]


def test_order_desc_walks_the_tasks_in_reverse(tenant: Tenant) -> None:
    import_references(tenant.project, 4)
    client = client_for(tenant.user(Role.ANNOTATOR))

    assert walk(client, tenant.project, {"order": "desc"}, 2) == all_ids(tenant.project)[::-1]
    assert walk(client, tenant.project, {"order": "desc"}, 3) == all_ids(tenant.project)[::-1]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "%%%",
        _b64(b"nope"),
        _b64(b"id:"),
        _b64(b"id:abc"),
        _b64(b"page:5"),
        _b64(b"\xff\xfe:5"),
        "é",
    ],
)
def test_a_garbage_cursor_is_refused_with_a_clear_message(tenant: Tenant, cursor: str) -> None:
    response = client_for(tenant.user(Role.ANNOTATOR)).get(
        tasks_url(tenant.project), {"cursor": cursor}
    )

    assert response.status_code == 400
    assert error_of(response) == {
        "code": "invalid",
        "message": "The cursor is not valid; start from the first page.",
    }


@pytest.mark.parametrize("last_id", [2**63, 10**30])
def test_a_cursor_beyond_any_database_id_ends_the_walk_rather_than_failing(
    tenant: Tenant, last_id: int
) -> None:
    """We never mint such a cursor; it may be refused or read as "past the end", never crash."""
    client = client_for(tenant.user(Role.ANNOTATOR))
    client.raise_request_exception = False

    response = client.get(tasks_url(tenant.project), {"cursor": encode_cursor(last_id)})

    assert response.status_code != 500
    assert response.status_code == 400 or (
        response.json()["results"],
        response.json()["next_cursor"],
    ) == ([], None)


def test_page_size_is_capped_at_200(tenant: Tenant) -> None:
    import_references(tenant.project, 202)  # 205 tasks
    client = client_for(tenant.user(Role.ANNOTATOR))

    first = client.get(tasks_url(tenant.project), {"page_size": 1000}).json()
    rest = client.get(
        tasks_url(tenant.project), {"page_size": 1000, "cursor": first["next_cursor"]}
    ).json()

    assert len(first["results"]) == 200
    assert first["next_cursor"] is not None
    assert len(rest["results"]) == 5
    assert rest["next_cursor"] is None
    assert [row["id"] for row in first["results"] + rest["results"]] == all_ids(tenant.project)


def test_the_default_page_is_50(tenant: Tenant) -> None:
    import_references(tenant.project, 60)

    assert len(listed(tenant.user(Role.ANNOTATOR), tenant.project)) == 50


# ---------------------------------------------------------------------------- property


@pytest.fixture
def catalog(tenant: Tenant) -> Tenant:
    """A project whose tasks differ in every filtered field."""
    annotator, reviewer = tenant.user(Role.ANNOTATOR), tenant.user(Role.REVIEWER)
    manager = tenant.user(Role.MANAGER)
    services.add_label(tenant.project, name="unused")
    dent = tenant.project.labels.get(name="dent")
    tasks = [*tenant.tasks, *import_references(tenant.project, 11)]  # 14 tasks
    Task.objects.filter(pk__in=[task.pk for task in tasks[0:4]]).update(assignee=annotator)
    Task.objects.filter(pk__in=[task.pk for task in tasks[4:7]]).update(assignee=reviewer)
    save(annotator, tasks[1], [box(tenant.label)])
    save(annotator, tasks[2], [box(dent)], submit=True)
    save(manager, tasks[3], [box(dent), box(tenant.label)], submit=True)
    workflow.review(tasks[3], reviewer, verdict="approve")
    save(reviewer, tasks[5], [box(tenant.label)], submit=True)  # assigned to them
    workflow.review(tasks[5], manager, verdict="reject", comment="Redo")
    save(annotator, tasks[8], [box(tenant.label)])
    save(annotator, tasks[8], [box(dent)])
    save(manager, tasks[9], [])
    for task in (tasks[0], tasks[2], tasks[6], tasks[9], tasks[12]):
        workflow.add_prediction(
            task, model_name="m", model_version="1", shapes=[{**box(dent), "score": 0.3}]
        )
    workflow.next_task(tenant.project, manager)  # an unassigned task now in progress
    return tenant


ROLE_OF = {"annotator": Role.ANNOTATOR, "reviewer": Role.REVIEWER, "manager": Role.MANAGER}
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

filter_params = st.fixed_dictionaries(
    {},
    optional={
        "status": st.lists(st.sampled_from(TaskStatus.values), min_size=1, unique=True),
        "assignee": st.sampled_from(["me", "none", *ROLE_OF]),
        "has_annotation": st.sampled_from(list(BOOLEANS)),
        "has_prediction": st.sampled_from(list(BOOLEANS)),
        "label": st.sampled_from(["scratch", "dent", "unused"]),
        "order": st.sampled_from(["asc", "desc"]),
    },
)


def expected_ids(t: Tenant, drawn: dict[str, Any], me: User) -> list[int]:
    """The same filter written plainly against the tasks (labels read from the annotations)."""
    tasks = Task.objects.filter(project=t.project)
    if "status" in drawn:
        tasks = tasks.filter(status__in=drawn["status"])
    assignee = drawn.get("assignee")
    if assignee == "none":
        tasks = tasks.filter(assignee__isnull=True)
    elif assignee == "me":
        tasks = tasks.filter(assignee=me)
    elif assignee is not None:
        tasks = tasks.filter(assignee=t.user(ROLE_OF[assignee]))
    for name in ("has_annotation", "has_prediction"):
        if name in drawn:
            tasks = tasks.filter(**{name: BOOLEANS[drawn[name]]})
    if "label" in drawn:
        label = Label.objects.get(project=t.project, name=drawn["label"])
        using = [
            annotation.task_id
            for annotation in Annotation.objects.filter(task__project=t.project)
            if any(shape["label"] == label.pk for shape in annotation.shapes)
        ]
        tasks = tasks.filter(id__in=using)
    ordering = "-id" if drawn.get("order") == "desc" else "id"
    return list(tasks.order_by(ordering).values_list("id", flat=True))


def as_query(t: Tenant, drawn: dict[str, Any]) -> dict[str, Any]:
    query = dict(drawn)
    if "status" in query:
        query["status"] = ",".join(query["status"])
    if query.get("assignee") in ROLE_OF:
        query["assignee"] = t.user(ROLE_OF[query["assignee"]]).pk
    if "label" in query:
        query["label"] = Label.objects.get(project=t.project, name=query["label"]).pk
    return query


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(drawn=filter_params, page_size=st.integers(min_value=1, max_value=6))
def test_all_pages_together_equal_the_filtered_tasks_in_id_order(
    catalog: Tenant, drawn: dict[str, Any], page_size: int
) -> None:
    me = catalog.user(Role.ANNOTATOR)

    pages = walk(client_for(me), catalog.project, as_query(catalog, drawn), page_size)

    assert pages == expected_ids(catalog, drawn, me)


def test_the_catalog_covers_every_status_and_filter_value(catalog: Tenant) -> None:
    """Guards the property test above against a fixture whose filters all match everything."""
    tasks = Task.objects.filter(project=catalog.project)
    assert set(tasks.values_list("status", flat=True)) == set(TaskStatus.values)
    for name in ("has_annotation", "has_prediction"):
        assert set(tasks.values_list(name, flat=True)) == {True, False}
    assert tasks.filter(assignee__isnull=True).exists()
    assert tasks.filter(assignee=catalog.user(Role.ANNOTATOR)).exists()
    assert tasks.filter(assignee=catalog.user(Role.REVIEWER)).exists()


# ---------------------------------------------------------------------------- import


def post_import(t: Tenant, body: Any) -> Any:
    return client_for(t.user(Role.MANAGER)).post(
        f"/api/projects/{t.project.pk}/import/", body, format="json"
    )


def test_import_creates_tasks_for_remote_references(tenant: Tenant) -> None:
    before = set(all_ids(tenant.project))

    response = post_import(
        tenant,
        {
            "tasks": [
                "https://host/a.jpg",
                {"image": "https://host/b.png", "width": 10, "height": 5},
            ]
        },
    )

    assert response.status_code == 201
    new = [task_id for task_id in all_ids(tenant.project) if task_id not in before]
    answer = response.json()
    assert answer["created"] == 2 and answer["task_ids"] == sorted(new)
    assert answer["ranges"] == [[min(new), max(new)]]
    rows = client_for(tenant.user(Role.ANNOTATOR)).get(
        tasks_url(tenant.project), {"status": "new", "page_size": 200}
    )
    imported = [row for row in rows.json()["results"] if row["id"] in new]
    assert [(row["file_name"], row["width"], row["height"]) for row in imported] == [
        ("a.jpg", None, None),
        ("b.png", 10, 5),
    ]
    # An http(s) reference is shown through the media view (which fetches it through the
    # guarded fetcher). (s3:// addresses: tests/media/test_storage_sync.py.)
    assert imported[0]["image_url"].startswith("/media/")
    assert [task.image for task in Task.objects.filter(id__in=new).order_by("id")] == [
        "https://host/a.jpg",
        "https://host/b.png",
    ]
    tenant.project.refresh_from_db()
    assert tenant.project.count_new == 5
    event = AuditEvent.objects.get(action="tasks.imported")
    assert (event.organization_id, event.data) == (tenant.organization.pk, {"count": 2})


@pytest.mark.parametrize(
    "bad_row",
    [
        "ftp://x",
        "https:///no-host.jpg",
        "not a url",
        "s3://",
        {"image": "https://host/x.jpg", "width": -1},
        {"image": "https://host/x.jpg", "height": 0},
        {"image": "https://host/x.jpg", "width": 2.5},
        {"image": "https://host/x.jpg", "width": True},
        {"image": "https://host/x.jpg", "width": "10"},
        {"width": 10},
        {"image": ""},
        ["https://host/x.jpg"],
        5,
        None,
    ],
    ids=repr,
)
def test_a_bad_import_row_is_refused_naming_it_and_nothing_is_created(
    tenant: Tenant, bad_row: Any
) -> None:
    before = all_ids(tenant.project)

    response = post_import(
        tenant, {"tasks": ["https://host/ok.jpg", bad_row, "https://host/2.jpg"]}
    )

    assert response.status_code == 400
    error = error_of(response)
    assert error["message"].startswith("Row 2:")
    assert error["details"] == {"row": 2}
    assert all_ids(tenant.project) == before
    tenant.project.refresh_from_db()
    assert tenant.project.count_new == 3
    assert not AuditEvent.objects.filter(action="tasks.imported").exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"tasks": "https://host/a.jpg"}, "Send a non-empty JSON list of tasks."),
        ({"tasks": {"image": "https://host/a.jpg"}}, "Send a non-empty JSON list of tasks."),
        ({"tasks": []}, "Send a non-empty JSON list of tasks."),
        # An object without "tasks" is one task: it names no image.
        ({}, "Row 1: each entry needs an “image” address."),
    ],
    ids=["a string", "an object", "an empty list", "no tasks key"],
)
def test_an_import_that_is_not_a_list_is_refused(tenant: Tenant, body: Any, message: str) -> None:
    before = all_ids(tenant.project)

    response = post_import(tenant, body)

    assert response.status_code == 400
    assert error_of(response)["message"] == message
    assert all_ids(tenant.project) == before


def test_an_import_may_send_the_bare_list(tenant: Tenant) -> None:
    response = post_import(tenant, ["https://host/a.jpg", "https://host/b.jpg"])

    assert response.status_code == 201
    assert response.json()["created"] == 2


def test_an_annotator_cannot_import(tenant: Tenant) -> None:
    response = client_for(tenant.user(Role.ANNOTATOR)).post(
        f"/api/projects/{tenant.project.pk}/import/",
        {"tasks": ["https://host/a.jpg"]},
        format="json",
    )

    assert response.status_code == 403
    assert len(all_ids(tenant.project)) == 3


def test_the_list_writes_each_task_exactly_as_the_task_serializer(tenant: Tenant) -> None:
    from django.utils import timezone

    from defectlab.labeling.api import TaskSerializer, task_rows

    import_references(tenant.project, 2)  # remote references next to the uploads
    Task.objects.filter(pk=tenant.tasks[0].pk).update(
        assignee=tenant.user(Role.ANNOTATOR),
        lock_owner=tenant.user(Role.ANNOTATOR),
        lock_expires_at=timezone.now(),
    )
    tasks = list(Task.objects.filter(project=tenant.project).order_by("id"))
    assert task_rows(tasks) == TaskSerializer(tasks, many=True).data


# ---------------------------------------------------------------------------- sort keys


@pytest.mark.parametrize(
    "sort", ["file_name", "-file_name", "updated", "-updated", "-id", "status", "-status"]
)
def test_every_sort_key_walks_all_tasks_once_in_its_order(tenant: Tenant, sort: str) -> None:
    tasks = import_references(tenant.project, 23)
    statuses = list(TaskStatus)
    # Repeated names, statuses and equal timestamps: the id breaks ties, so no page skips or
    # repeats.
    for index, task in enumerate(tasks):
        Task.objects.filter(pk=task.pk).update(
            file_name=f"panel-{(index * 7) % 5}.jpg",
            updated_at=task.updated_at.replace(microsecond=0, second=index % 3),
            status=statuses[(index * 3) % len(statuses)],
        )
    owner = tenant.user(Role.OWNER)
    ids = walk(client_for(owner), tenant.project, {"sort": sort}, page_size=4)
    every = Task.objects.filter(project=tenant.project)
    field_name = {
        "file_name": "file_name",
        "updated": "updated_at",
        "id": "id",
        "status": "status",
    }[sort.lstrip("-")]
    expected = (
        every.order_by(f"-{field_name}", "-id")
        if sort.startswith("-")
        else every.order_by(field_name, "id")
    )
    assert ids == list(expected.values_list("id", flat=True))


def test_sorting_keeps_the_filters(tenant: Tenant) -> None:
    tasks = import_references(tenant.project, 6)
    Task.objects.filter(pk__in=[tasks[1].pk, tasks[4].pk]).update(status=TaskStatus.REJECTED)
    owner = tenant.user(Role.OWNER)
    ids = walk(client_for(owner), tenant.project, {"sort": "-file_name", "status": "rejected"}, 1)
    assert ids == [tasks[4].pk, tasks[1].pk]


@pytest.mark.parametrize("sort", ["size", "--id", "file_name;drop"])
def test_an_unknown_sort_key_is_refused_with_the_keys_named(tenant: Tenant, sort: str) -> None:
    response = client_for(tenant.user(Role.OWNER)).get(tasks_url(tenant.project), {"sort": sort})
    assert response.status_code == 400
    assert "id, file_name, updated" in response.json()["error"]["message"]


def test_a_forged_sort_cursor_is_refused(tenant: Tenant) -> None:
    import_references(tenant.project, 3)
    forged = base64.urlsafe_b64encode(b'key:["a", "b"]').decode()
    response = client_for(tenant.user(Role.OWNER)).get(
        tasks_url(tenant.project), {"sort": "file_name", "cursor": forged}
    )
    assert response.status_code == 400


def test_neighbours_are_the_tasks_before_and_after_in_the_project_list(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    first, middle, last = tenant.tasks
    annotator = tenant.user(Role.ANNOTATOR)
    # The other project's tasks come later (larger ids) but are not in this list.
    assert other_tenant.tasks[0].pk > last.pk
    assert tasklist.neighbours(first, annotator) == (None, middle.pk)
    assert tasklist.neighbours(middle, annotator) == (first.pk, last.pk)
    assert tasklist.neighbours(last, annotator) == (middle.pk, None)
    # A gap left by a deleted task is stepped over.
    services.delete_task(middle)
    assert tasklist.neighbours(last, annotator) == (first.pk, None)


def test_someone_outside_the_organization_gets_no_neighbours(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    outsider = other_tenant.user(Role.OWNER)
    assert tasklist.neighbours(tenant.tasks[1], outsider) == (None, None)


def test_a_page_of_the_task_list_says_how_many_tasks_match(tenant: Tenant) -> None:
    annotate(tenant, tenant.tasks[0])
    api = client_for(tenant.user(Role.MANAGER))
    everything = api.get(tasks_url(tenant.project), {"page_size": 1}).json()
    assert (everything["total"], everything["total_capped"]) == (len(tenant.tasks), False)
    assert len(everything["results"]) == 1  # the total is of all pages, not this one
    submitted = api.get(tasks_url(tenant.project), {"status": "submitted"}).json()
    assert submitted["total"] == 1
    unlabeled = api.get(tasks_url(tenant.project), {"has_annotation": "false"}).json()
    assert unlabeled["total"] == len(tenant.tasks) - 1
