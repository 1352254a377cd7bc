"""POST /api/projects/{id}/import/: Label Studio's JSON and JSON-MIN exports as they are, our own
tasks with shapes, the job above the synchronous size, refusals that import nothing, tenancy,
and the stored counters, filters and label index right after an import.

No network: every image is kept by its address and never fetched (the sizes come with the
tasks), so the addresses need not answer."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from defectlab.geometry import Shape, shapes_from_json
from defectlab.jobs.models import Job, JobState
from defectlab.jobs.runner import run_job
from defectlab.labeling import services
from defectlab.labeling.models import (
    Annotation,
    AnnotationVersion,
    Label,
    Prediction,
    Project,
    Task,
    TaskLabel,
)
from defectlab.tenancy.roles import Role
from defectlab.transfer import taskimport
from tests.conftest import Tenant, client_for

COUNTERS = ("count_new", "count_in_progress", "count_submitted", "count_approved", "count_rejected")
W, H = 2000, 1000  # every image here: 2000 × 1000 pixels


def url(project: Project) -> str:
    return f"/api/projects/{project.pk}/import/"


def manager(tenant: Tenant) -> APIClient:
    return client_for(tenant.user(Role.MANAGER))


def empty_project(tenant: Tenant, name: str = "Line 4") -> Project:
    return services.create_project(
        tenant.organization,
        tenant.user(Role.OWNER),
        name=name,
        shape_types=["box"],
        labels=[{"name": "scratch"}],
    )


def post_json(client: APIClient, project: Project, body: Any) -> Any:
    return client.post(url(project), json.dumps(body), content_type="application/json")


def post_file(client: APIClient, project: Project, data: bytes, name: str = "export.json") -> Any:
    upload = SimpleUploadedFile(name, data, content_type="application/json")
    return client.post(url(project), {"file": upload}, format="multipart")


def region(
    kind: str, value: dict[str, Any], region_id: str, from_name: str = "label"
) -> dict[str, Any]:
    return {
        "id": region_id,
        "type": kind,
        "from_name": from_name,
        "to_name": "image",
        "original_width": W,
        "original_height": H,
        "image_rotation": 0,
        "value": value,
        "origin": "manual",
    }


def label_studio_export() -> list[dict[str, Any]]:
    """Two tasks as Label Studio 1.x writes them in its JSON export (ids, timestamps, the
    annotator, a cancelled annotation before the real one, a prediction with its score)."""
    first = [
        region(
            "rectanglelabels",
            {
                "x": 10,
                "y": 20,
                "width": 30,
                "height": 40,
                "rotation": 0,
                "rectanglelabels": ["scratch"],
            },
            "a1",
        ),
        region(
            "rectanglelabels",
            {
                "x": 50,
                "y": 10,
                "width": 10,
                "height": 20,
                "rotation": 90,
                "rectanglelabels": ["dent"],
            },
            "a2",
        ),
        region(
            "polygonlabels",
            {"points": [[10, 10], [20, 10], [20, 30]], "closed": True, "polygonlabels": ["crack"]},
            "a3",
            "polygon",
        ),
        region("keypointlabels", {"x": 50, "y": 50, "width": 0.5, "keypointlabels": ["pit"]}, "a4"),
        region("choices", {"choices": ["NG"]}, "t1", "tags"),
    ]
    prediction = [
        {
            **region(
                "rectanglelabels",
                {
                    "x": 0,
                    "y": 0,
                    "width": 10,
                    "height": 10,
                    "rotation": 0,
                    "rectanglelabels": ["scratch"],
                },
                "p1",
            ),
            "score": 0.87,
        },
    ]
    annotation = {
        "id": 11,
        "completed_by": 1,
        "result": first,
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": "2026-11-30T08:00:00.000000Z",
        "updated_at": "2026-11-30T08:00:00.000000Z",
        "lead_time": 12.5,
        "prediction": {},
        "result_count": 5,
        "task": 1,
        "project": 3,
    }
    return [
        {
            "id": 1,
            "annotations": [
                {**annotation, "id": 10, "was_cancelled": True, "result": []},
                annotation,
            ],
            "drafts": [],
            "predictions": [
                {"id": 5, "model_version": "yolo-v8", "score": 0.9, "result": prediction}
            ],
            "data": {"image": "https://cam.example.com/line3/0001.jpg"},
            "meta": {},
            "created_at": "2026-11-30T07:00:00.000000Z",
            "updated_at": "2026-11-30T08:00:00.000000Z",
            "inner_id": 1,
            "total_annotations": 1,
            "cancelled_annotations": 1,
            "total_predictions": 1,
            "project": 3,
            "updated_by": 1,
            "file_upload": None,
        },
        {
            "id": 2,
            "annotations": [],
            "predictions": [],
            "data": {"image": "https://cam.example.com/line3/0002.jpg"},
            "meta": {},
            "inner_id": 2,
            "project": 3,
        },
    ]


def label_studio_json_min() -> list[dict[str, Any]]:
    """What Label Studio's JSON-MIN export writes (label-studio-converter,
    ``convert_to_json_min``): the task's data, its id, each control's results under the
    control's name with their type taken out, one choice as bare text, and the annotation's
    metadata; one record per annotation."""
    return [
        {
            "image": "https://cam.example.com/line3/0001.jpg",
            "id": 1,
            "label": [
                {
                    "x": 10,
                    "y": 20,
                    "width": 30,
                    "height": 40,
                    "rotation": 0,
                    "rectanglelabels": ["scratch"],
                    "original_width": W,
                    "original_height": H,
                },
                {
                    "points": [[10, 10], [20, 10], [20, 30]],
                    "closed": True,
                    "polygonlabels": ["crack"],
                    "original_width": W,
                    "original_height": H,
                },
            ],
            "tags": "NG",
            "annotator": 1,
            "annotation_id": 11,
            "created_at": "2026-11-30T08:00:00.000000Z",
            "updated_at": "2026-11-30T08:00:00.000000Z",
            "lead_time": 12.5,
        },
        {  # an older annotation of the same task: JSON-MIN repeats the task
            "image": "https://cam.example.com/line3/0001.jpg",
            "id": 1,
            "label": [
                {
                    "x": 0,
                    "y": 0,
                    "width": 5,
                    "height": 5,
                    "rotation": 0,
                    "rectanglelabels": ["dent"],
                    "original_width": W,
                    "original_height": H,
                },
            ],
            "annotator": 2,
            "annotation_id": 9,
            "created_at": "2026-11-29T08:00:00.000000Z",
            "updated_at": "2026-11-29T08:00:00.000000Z",
            "lead_time": 3.0,
        },
        {
            "image": "https://cam.example.com/line3/0003.jpg",
            "id": 3,
            "annotator": 1,
            "annotation_id": None,
            "created_at": None,
            "updated_at": None,
            "lead_time": None,
        },
    ]


def shapes_of(task: Task) -> tuple[list[tuple[str, str, list[tuple[float, float]]]], list[str]]:
    annotation = Annotation.objects.get(task=task)
    names = dict(Label.objects.filter(project_id=task.project_id).values_list("id", "name"))
    shapes = [
        (
            shape.type.value,
            names[shape.label],
            [(round(x, 3), round(y, 3)) for x, y in shape.points],
        )
        for shape in shapes_from_json(annotation.shapes)
    ]
    return shapes, list(annotation.tags)


def assert_stored_state_true(project: Project) -> None:
    """Counters, has_annotation / has_prediction and the label index agree with the rows."""
    project.refresh_from_db()
    stored = {counter: getattr(project, counter) for counter in COUNTERS}
    services.recount(project)
    project.refresh_from_db()
    assert stored == {counter: getattr(project, counter) for counter in COUNTERS}
    for task in Task.objects.filter(project=project):
        annotation = Annotation.objects.filter(task=task).first()
        assert task.has_annotation == (annotation is not None)
        assert task.has_prediction == Prediction.objects.filter(task=task).exists()
        used = {shape["label"] for shape in annotation.shapes} if annotation else set()
        assert set(TaskLabel.objects.filter(task=task).values_list("label_id", flat=True)) == used
        if annotation is not None:
            version = AnnotationVersion.objects.get(annotation=annotation)
            assert (version.version, version.shapes, version.tags) == (
                1,
                annotation.shapes,
                annotation.tags,
            )


def listed(client: APIClient, project: Project, query: str) -> list[int]:
    response = client.get(f"/api/projects/{project.pk}/tasks/?{query}")
    assert response.status_code == 200, response.content
    return [task["id"] for task in response.json()["results"]]


# ---------------------------------------------------------------------------- Label Studio


@pytest.mark.parametrize("as_file", [False, True], ids=["body", "file"])
def test_a_label_studio_json_export_imports_as_it_is(tenant: Tenant, as_file: bool) -> None:
    client = manager(tenant)
    project = empty_project(tenant)
    data = json.dumps(label_studio_export()).encode()
    response = (
        post_file(client, project, data)
        if as_file
        else post_json(client, project, json.loads(data))
    )
    assert response.status_code == 201, response.content
    answer = response.json()
    assert answer["created"] == 2 and answer["annotated"] == 1 and answer["predictions"] == 1
    first, second = Task.objects.filter(project=project).order_by("id")
    assert answer["task_ids"] == [first.pk, second.pk]
    assert answer["ranges"] == [[first.pk, second.pk]]
    assert (answer["first_id"], answer["last_id"]) == (first.pk, second.pk)
    assert sorted(answer["labels_created"]) == ["crack", "dent", "pit"]  # scratch was there
    assert answer["tags_added"] == ["NG"]
    assert sorted(answer["shape_types_added"]) == ["points", "polygon"]
    assert (first.image, first.file_name) == ("https://cam.example.com/line3/0001.jpg", "0001.jpg")
    assert (first.width, first.height, first.status) == (W, H, "submitted")
    assert (second.width, second.height, second.status) == (None, None, "new")
    shapes, tags = shapes_of(first)
    # Percent → pixels: x 10 % of 2000 = 200, y 20 % of 1000 = 200, and so on; the 90° box
    # turns about its top-left corner (1000, 100): width 200 px goes down, height 200 px left.
    assert shapes == [
        ("box", "scratch", [(200, 200), (800, 600)]),
        ("polygon", "dent", [(1000, 100), (1000, 300), (800, 300), (800, 100)]),
        ("polygon", "crack", [(200, 100), (400, 100), (400, 300)]),
        ("points", "pit", [(1000, 500)]),
    ]
    assert tags == ["NG"]
    annotation = Annotation.objects.get(task=first)
    assert annotation.author_id == tenant.user(Role.MANAGER).pk and annotation.version == 1
    (prediction,) = Prediction.objects.filter(task=first)
    (predicted,) = shapes_from_json(prediction.shapes)
    assert predicted.points == ((0, 0), (200, 100)) and predicted.score == pytest.approx(0.87)
    assert not Annotation.objects.filter(task=second).exists()
    assert_stored_state_true(project)


def test_a_label_studio_json_min_export_imports_as_it_is(tenant: Tenant) -> None:
    client = manager(tenant)
    project = empty_project(tenant)
    response = post_file(client, project, json.dumps(label_studio_json_min(), indent=2).encode())
    assert response.status_code == 201, response.content
    answer = response.json()
    assert answer["created"] == 2 and answer["annotated"] == 1
    assert answer["duplicates_skipped"] == 1  # the task's older annotation
    first, third = Task.objects.filter(project=project).order_by("id")
    assert first.image.endswith("0001.jpg") and third.image.endswith("0003.jpg")
    shapes, tags = shapes_of(first)
    assert shapes == [
        ("box", "scratch", [(200, 200), (800, 600)]),
        ("polygon", "crack", [(200, 100), (400, 100), (400, 300)]),
    ]
    assert tags == ["NG"]
    assert third.status == "new" and not third.has_annotation
    assert "dent" not in answer["labels_created"]
    assert_stored_state_true(project)


def test_our_own_label_studio_export_imports_back_the_same(tenant: Tenant) -> None:
    client = manager(tenant)
    source = empty_project(tenant, "Source")
    scratch = Label.objects.get(project=source, name="scratch")
    ours = [
        {
            "image": f"https://cam.example.com/a/{index}.jpg",
            "width": W,
            "height": H,
            "annotations": [
                {
                    "shapes": [
                        Shape.box(100 + index, 50, 400, 300.5, label=scratch.pk).to_dict(),
                        {
                            **Shape.polygon([(10, 10), (90, 15), (50, 80)], label=0).to_dict(),
                            "label": "dent",
                        },
                    ],
                    "tags": ["OK"],
                }
            ],
        }
        for index in range(3)
    ]
    response = post_json(client, source, ours)
    assert response.status_code == 201, response.content
    export = client.post(
        f"/api/projects/{source.pk}/export/",
        {"format": "labelstudio", "include_images": False},
        format="json",
    )
    assert export.status_code == 202, export.content
    run_job(export.json()["id"])
    job = Job.objects.get(pk=export.json()["id"])
    assert job.state == JobState.SUCCEEDED, job.error
    archive = b"".join(client.get(f"/api/jobs/{job.pk}/download/").streaming_content)  # type: ignore[attr-defined]
    tasks_json = zipfile.ZipFile(io.BytesIO(archive)).read("tasks.json")
    target = empty_project(tenant, "Target")
    response = post_file(client, target, tasks_json, "tasks.json")
    assert response.status_code == 201, response.content
    before = [shapes_of(task) for task in Task.objects.filter(project=source).order_by("id")]
    after = [shapes_of(task) for task in Task.objects.filter(project=target).order_by("id")]
    assert after == before and len(after) == 3
    assert_stored_state_true(target)


# ---------------------------------------------------------------------------- our own tasks


def test_our_own_tasks_with_annotations_and_predictions(tenant: Tenant) -> None:
    client = manager(tenant)
    project = tenant.project
    before = len(tenant.tasks)
    dent = Label.objects.get(project=project, name="dent")
    body = {
        "tasks": [
            "https://cam.example.com/plain.jpg",
            {
                "image": "https://cam.example.com/b.jpg",
                "file_name": "lot42-b.jpg",
                "width": 640,
                "height": 480,
                "annotations": {
                    "shapes": [
                        {
                            "type": "box",
                            "points": [[1, 2], [30, 40]],
                            "label": "scratch",
                            "attributes": {"severity": "major"},
                        },
                        {"type": "box", "points": [[5, 5], [9, 9]], "label": dent.pk},
                    ],
                    "tags": ["NG"],
                },
                "predictions": [
                    {
                        "model_name": "yolo",
                        "model_version": "v3",
                        "shapes": [
                            {
                                "type": "box",
                                "points": [[0, 0], [10, 10]],
                                "label": "scratch",
                                "score": 0.5,
                            }
                        ],
                    },
                ],
            },
        ]
    }
    response = post_json(client, project, body)
    assert response.status_code == 201, response.content
    answer = response.json()
    assert answer["created"] == 2 and answer["labels_created"] == []
    plain, annotated = Task.objects.filter(pk__in=answer["task_ids"]).order_by("id")
    assert plain.file_name == "plain.jpg" and plain.status == "new"
    assert annotated.file_name == "lot42-b.jpg" and annotated.status == "submitted"
    stored = Annotation.objects.get(task=annotated).shapes
    assert stored[0]["attributes"] == {"severity": "major"}
    assert stored[1]["label"] == dent.pk and stored[1]["attributes"] == {}
    (prediction,) = Prediction.objects.filter(task=annotated)
    assert (prediction.model_name, prediction.model_version) == ("yolo", "v3")
    assert prediction.shapes[0]["score"] == 0.5
    # Counters and the list's filters are right at once.
    assert_stored_state_true(project)
    project.refresh_from_db()
    assert project.task_count == before + 2
    scratch = tenant.label.pk
    assert listed(client, project, "has_annotation=true") == [annotated.pk]
    assert listed(client, project, "has_prediction=true") == [annotated.pk]
    assert listed(client, project, f"label={scratch}") == [annotated.pk]
    assert listed(client, project, "status=submitted") == [annotated.pk]
    assert plain.pk in listed(client, project, "has_annotation=false")


# ---------------------------------------------------------------------------- the job


def test_above_the_synchronous_size_a_job_imports_it(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(taskimport, "SYNC_TASKS", 3)
    monkeypatch.setattr(taskimport, "LISTED_IDS", 3)
    client = manager(tenant)
    project = empty_project(tenant)
    body = [
        {
            "data": {"image": f"https://cam.example.com/{index}.jpg"},
            "annotations": [
                {
                    "result": [
                        region(
                            "rectanglelabels",
                            {
                                "x": 1,
                                "y": 1,
                                "width": 2,
                                "height": 2,
                                "rectanglelabels": ["scratch"],
                            },
                            "r",
                        )
                    ]
                }
            ],
        }
        for index in range(5)
    ]
    response = post_json(client, project, body)
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert not Task.objects.filter(project=project).exists()  # not before the job
    run_job(job_id)
    job = Job.objects.get(pk=job_id)
    assert job.state == JobState.SUCCEEDED, job.error
    ids = list(Task.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    assert len(ids) == 5 and job.result["created"] == 5 and job.result["annotated"] == 5
    assert job.result["ranges"] == [[ids[0], ids[-1]]] and "task_ids" not in job.result
    assert (job.result["first_id"], job.result["last_id"]) == (ids[0], ids[-1])
    answer = client.get(f"/api/jobs/{job_id}/?wait=5").json()
    assert answer["state"] == "succeeded" and answer["result"]["created"] == 5
    assert_stored_state_true(project)
    # Run again (a redelivered message): nothing more lands.
    from defectlab.labeling.models import Task as T

    job.state = JobState.QUEUED
    job.save(update_fields=["state"])
    run_job(job_id)
    assert T.objects.filter(project=project).count() == 5


# ---------------------------------------------------------------------------- refusals


def refusal(client: APIClient, project: Project, body: bytes | Any) -> dict[str, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(url(project), data, content_type="application/json")
    assert response.status_code in (400, 413), response.content
    assert not Task.objects.filter(project=project).exists()
    assert set(Label.objects.filter(project=project).values_list("name", flat=True)) == {"scratch"}
    return dict(response.json()["error"], status=response.status_code)


def test_bad_input_is_refused_naming_the_entry_and_imports_nothing(
    tenant: Tenant, settings: Any
) -> None:
    client = manager(tenant)
    project = empty_project(tenant)
    good = label_studio_export()[0]
    assert "not valid JSON" in refusal(client, project, b'[{"data": ')["message"]
    assert refusal(client, project, b"")["message"].startswith("Send a non-empty JSON list")
    unknown = json.loads(json.dumps(good))
    unknown["annotations"][1]["result"][0]["type"] = "cuboidlabels3d"
    unknown["annotations"][1]["result"][0]["type"] = "hologram"
    error = refusal(client, project, [label_studio_export()[1], unknown])
    assert error["message"].startswith("task 2.annotations[1].result[0]:")
    assert "hologram" in error["message"]
    error = refusal(client, project, [good, {"data": {"text": 3}}])
    assert error["message"].startswith("task 2: data:")
    error = refusal(client, project, [good, {"image": "https://a/b.jpg", "label": "x"}])
    assert "task 2" in error["message"] and "label" in error["message"]
    outside = json.loads(json.dumps(good))
    outside["annotations"][1]["result"][0]["value"]["x"] = 95  # 95 % + 30 % is off the image
    assert refusal(client, project, [outside])["message"].startswith("task 1.annotations[1]")
    error = refusal(client, project, ["https://a/1.jpg", "ftp://a/2.jpg"])
    assert error["details"] == {"row": 2}
    no_size = {
        "image": "https://a/1.jpg",
        "annotations": [
            {"shapes": [{"type": "box", "points": [[0, 0], [5, 5]], "label": "scratch"}]}
        ],
    }
    assert "size is unknown" in refusal(client, project, [no_size])["message"]
    foreign = {
        "image": "https://a/1.jpg",
        "width": 9,
        "height": 9,
        "annotations": [
            {"shapes": [{"type": "box", "points": [[0, 0], [5, 5]], "label": tenant.label.pk}]}
        ],
    }
    assert "not a label of this project" in refusal(client, project, [foreign])["message"]
    settings.MAX_IMPORT_MB = 1
    error = refusal(
        client, project, [f"https://cam.example.com/{i:09d}.jpg" for i in range(40_000)]
    )
    assert error["status"] == 413 and "1 MB" in error["message"]


def test_a_failure_while_landing_imports_nothing(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import DatabaseError

    from defectlab.labeling import tasks as labeling_tasks

    insert = labeling_tasks._insert

    def fail(model: Any, *args: Any, **kwargs: Any) -> Any:
        if model is Prediction:  # the last table an import writes
            raise DatabaseError("disk full")
        return insert(model, *args, **kwargs)

    monkeypatch.setattr(labeling_tasks, "_insert", fail)
    client = manager(tenant)
    client.raise_request_exception = False
    project = empty_project(tenant)
    response = post_json(client, project, label_studio_export())
    assert response.status_code == 500
    assert not Task.objects.filter(project=project).exists()
    assert not Annotation.objects.filter(task__project=project).exists()
    assert list(Label.objects.filter(project=project).values_list("name", flat=True)) == ["scratch"]
    assert_stored_state_true(project)


# ---------------------------------------------------------------------------- tenancy, roles


def test_another_organizations_project_is_a_404(tenant: Tenant, other_tenant: Tenant) -> None:
    client = manager(tenant)
    response = post_json(client, other_tenant.project, label_studio_export())
    assert response.status_code == 404
    assert Task.objects.filter(project=other_tenant.project).count() == len(other_tenant.tasks)


def test_an_annotator_may_not_import(tenant: Tenant) -> None:
    client = client_for(tenant.user(Role.ANNOTATOR))
    response = post_json(client, tenant.project, ["https://cam.example.com/a.jpg"])
    assert response.status_code == 403


@given(
    st.sampled_from(["http://", "https://"]),
    st.text(alphabet="abcXYZ019.-:[]@", max_size=20),
    st.text(alphabet="/abc é%20?#&=:;\t\n\x00\x7f", max_size=20),
)
def test_the_plain_address_shortcut_reads_what_urlsplit_reads(
    scheme: str, host: str, rest: str
) -> None:
    address = scheme + host + rest
    plain = services._PLAIN_URL.match(address)
    if plain is not None:
        parts = urlsplit(address)
        assert (plain[1], plain[2], plain[3] or "") == (parts.scheme, parts.netloc, parts.path)


def test_a_file_name_reads_the_same_by_every_kind_of_entry(tenant: Tenant) -> None:
    """One rule for the name a task shows: the address's last part, percent-decoded, whether
    the entry is a bare address, our task without a file name, or a Label Studio task."""
    client = manager(tenant)
    project = empty_project(tenant)
    address = "https://cam.example.com/lot%201/p%C3%A9%20%231.jpg?sig=a%2Fb"
    ours = {"image": address, "width": W, "height": H}
    label_studio = {"data": {"image": address}}
    named = {"image": address, "file_name": "kept as%20given.jpg"}
    response = post_json(client, project, [address, ours, label_studio, named])
    assert response.status_code == 201, response.content
    names = list(Task.objects.filter(project=project).order_by("id").values_list("file_name"))
    assert names == [("pé #1.jpg",)] * 3 + [("kept as%20given.jpg",)]
    assert set(Task.objects.filter(project=project).values_list("image", flat=True)) == {address}


def test_an_import_leaves_the_garbage_collector_as_it_found_it(tenant: Tenant) -> None:
    import gc

    from defectlab.transfer.landing import collector_paused

    client = manager(tenant)
    project = empty_project(tenant)
    assert gc.isenabled()
    assert post_json(client, project, label_studio_export()).status_code == 201
    assert gc.isenabled()
    refusal(client, empty_project(tenant, "Line 5"), [{"data": {"image": 3}}])
    assert gc.isenabled()
    with collector_paused():  # nested, as two imports in two threads of one process
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer one is still reading
    assert gc.isenabled()
