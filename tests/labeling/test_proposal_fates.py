"""What became of the model's proposals is kept with each annotation version (issue 9): a save
says which were accepted, changed or dropped; later versions keep those fates; scripts that say
nothing about proposals save as before; and the workspace hands the fates to the canvas."""

from __future__ import annotations

from typing import Any

from django.test import Client

from defectlab.labeling import workflow
from defectlab.labeling.models import AnnotationVersion, Prediction, Task
from defectlab.tenancy.models import Role
from tests.conftest import Tenant, box, client_for


def predicted(tenant: Tenant, task: Task, count: int = 3) -> Prediction:
    shapes = [
        box(tenant.label, 2 + 10 * i, 2, 8 + 10 * i, 8) | {"score": 0.9} for i in range(count)
    ]
    return workflow.add_prediction(task, model_name="yolo", model_version="1", shapes=shapes)


def put(tenant: Tenant, task: Task, body: dict[str, Any]) -> Any:
    return client_for(tenant.user(Role.ANNOTATOR)).put(
        f"/api/tasks/{task.pk}/annotation/", body, format="json"
    )


def fates_of(task: Task) -> dict[int, list[dict[str, Any]]]:
    return {
        version.version: version.proposal_fates
        for version in AnnotationVersion.objects.filter(annotation__task=task)
    }


def test_a_save_stores_each_proposals_fate_with_the_version(tenant: Tenant) -> None:
    task = tenant.tasks[0]
    prediction = predicted(tenant, task)
    said = [
        {"prediction": prediction.pk, "index": 0, "fate": "accepted"},
        {"prediction": prediction.pk, "index": 2, "fate": "dropped"},
        {"prediction": prediction.pk, "index": 1, "fate": "changed"},
    ]

    response = put(
        tenant,
        task,
        {"shapes": [box(tenant.label, 2, 2, 8, 8), box(tenant.label)], "proposals": said},
    )

    assert response.status_code == 200, response.json()
    assert fates_of(task) == {1: sorted(said, key=lambda fate: fate["index"])}
    versions = client_for(tenant.user(Role.ANNOTATOR)).get(
        f"/api/tasks/{task.pk}/annotation/versions/"
    )
    assert versions.json()[0]["proposals"][2] == {
        "prediction": prediction.pk,
        "index": 2,
        "fate": "dropped",
    }


def test_later_versions_keep_earlier_fates_and_scripts_saving_without_them_still_work(
    tenant: Tenant,
) -> None:
    task = tenant.tasks[0]
    prediction = predicted(tenant, task)
    first = [{"prediction": prediction.pk, "index": 0, "fate": "accepted"}]
    assert put(tenant, task, {"shapes": [box(tenant.label)], "proposals": first}).status_code == 200

    # A script saves without a word about proposals: the fates so far carry over.
    assert put(tenant, task, {"version": 1, "shapes": []}).status_code == 200
    # The canvas decides another one, and changes its mind about the first.
    later = [
        {"prediction": prediction.pk, "index": 1, "fate": "dropped"},
        {"prediction": prediction.pk, "index": 0, "fate": "dropped"},
    ]
    assert put(tenant, task, {"version": 2, "shapes": [], "proposals": later}).status_code == 200

    fates = fates_of(task)
    assert fates[1] == first and fates[2] == first
    assert [(fate["index"], fate["fate"]) for fate in fates[3]] == [(0, "dropped"), (1, "dropped")]


def test_fates_must_name_a_proposal_of_this_task(tenant: Tenant) -> None:
    task, elsewhere = tenant.tasks[0], tenant.tasks[1]
    prediction, foreign = predicted(tenant, task, count=2), predicted(tenant, elsewhere)
    for wrong in (
        {"prediction": prediction.pk, "index": 2, "fate": "accepted"},
        {"prediction": foreign.pk, "index": 0, "fate": "accepted"},
        {"prediction": prediction.pk, "index": 0, "fate": "maybe"},
    ):
        response = put(tenant, task, {"shapes": [], "proposals": [wrong]})
        assert response.status_code == 400, wrong
    assert not AnnotationVersion.objects.filter(annotation__task=task).exists()


def test_the_workspace_tells_the_canvas_which_proposals_are_decided(tenant: Tenant) -> None:
    task = tenant.tasks[0]
    prediction = predicted(tenant, task)
    said = [
        {"prediction": prediction.pk, "index": 0, "fate": "accepted"},
        {"prediction": prediction.pk, "index": 2, "fate": "dropped"},
    ]
    assert put(tenant, task, {"shapes": [box(tenant.label)], "proposals": said}).status_code == 200

    client = Client()
    client.force_login(tenant.user(Role.ANNOTATOR))
    config = client.get(f"/tasks/{task.pk}/annotate/config/").json()

    assert config["predictions"][0]["fates"] == ["accepted", None, "dropped"]
