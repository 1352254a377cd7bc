"""A registry version's acceptance: per class, what people kept, moved and deleted of its
proposals in the tasks they submitted, read from each task's current annotation version."""

from __future__ import annotations

from typing import Any

import pytest

from defectlab.inference import acceptance as service
from defectlab.inference import registry
from defectlab.inference.models import DetectionModel, ModelVersion, VersionState
from defectlab.labeling import workflow
from defectlab.labeling.models import Label, Prediction, Task
from defectlab.labeling.tasks import PredictionRow, insert_predictions
from defectlab.tenancy.models import Role
from tests.conftest import Tenant, box, client_for, make_tasks, signed_in
from tests.inference.registry import models as files

pytestmark = pytest.mark.django_db


def new_version(tenant: Tenant, name: str = "Scratches") -> ModelVersion:
    """A version as uploaded (its check job queued, not run: acceptance does not ask)."""
    manager = tenant.user(Role.MANAGER)
    model = DetectionModel.objects.filter(organization=tenant.organization, name=name).first()
    model = model or registry.create_model(tenant.organization, manager, name=name)
    made = files.good(author=f"run {model.versions.count() + 1}")  # a different file each time
    return registry.upload_version(model, manager, made)


@pytest.fixture
def version(tenant: Tenant, queued: list[int]) -> ModelVersion:
    return new_version(tenant)


def proposal(label: Label, x: float = 5, score: float = 0.9) -> dict[str, Any]:
    return {**box(label, x, 5, x + 10, 20), "score": score}


def predict(task: Task, source: str, labels: list[Label]) -> Prediction:
    """A prediction of ``source`` on the task: one proposal per label, side by side."""
    (prediction_id,) = insert_predictions(
        [
            PredictionRow(
                task.pk,
                task.organization_id,
                "Scratches",
                "1",
                [proposal(label, 5 + 12 * index) for index, label in enumerate(labels)],
                source=source,
            )
        ]
    )
    return Prediction.objects.get(pk=prediction_id)


def fates(prediction: Prediction, *decided: str | None) -> list[dict[str, Any]]:
    return [
        {"prediction": prediction.pk, "index": index, "fate": fate}
        for index, fate in enumerate(decided)
        if fate is not None
    ]


def save(
    tenant: Tenant,
    task: Task,
    *,
    proposals: Any = None,
    submit: bool = True,
    role: str = Role.ANNOTATOR,
) -> int:
    """Save the task from its current version (one scratch box), answering the new version."""
    task.refresh_from_db()
    current = getattr(task, "annotation", None)
    annotation = workflow.save_annotation(
        task,
        tenant.user(role),
        base_version=current.version if current else None,
        shapes=[box(tenant.label)],
        submit=submit,
        proposals=proposals,
    )
    return annotation.version


def counts(found: service.Counts) -> tuple[int, int, int, int]:
    return (found.kept, found.moved, found.deleted, found.left_out)


def by_class(found: service.Acceptance) -> dict[str | None, tuple[int, int, int, int]]:
    return {row.name: counts(row) for row in found.classes}


def test_nothing_decided_yet_is_an_empty_answer(tenant: Tenant, version: ModelVersion) -> None:
    predict(tenant.tasks[0], version.source, [tenant.label])
    found = service.acceptance(version)
    assert (found.tasks, found.proposals, found.rate, found.classes) == (0, 0, None, [])
    assert found.as_dict() == {
        "tasks": 0,
        "proposals": 0,
        "kept": 0,
        "moved": 0,
        "deleted": 0,
        "left_out": 0,
        "rate": None,
        "classes": [],
    }


def test_the_orders_people_decide_in_give_exact_counts(
    tenant: Tenant, other_tenant: Tenant, version: ModelVersion, queued: list[int]
) -> None:
    key = version.source
    scratch, dent = tenant.label, tenant.project.labels.get(name="dent")
    tasks = [*tenant.tasks, *make_tasks(tenant.project, 5)]

    # 1. Accept all three and save, then change one and submit (the canvas resends all).
    one = predict(tasks[0], key, [scratch, scratch, dent])
    save(tenant, tasks[0], proposals=fates(one, "accepted", "accepted", "accepted"), submit=False)
    save(tenant, tasks[0], proposals=fates(one, "accepted", "changed", "accepted"))

    # 2. Drop the scratch and save; submit later saying nothing (fates carried over): the dent,
    #    never decided, was left out of the submitted shapes.
    two = predict(tasks[1], key, [scratch, dent])
    save(tenant, tasks[1], proposals=fates(two, "dropped"), submit=False)
    save(tenant, tasks[1], proposals=None)

    # 3. Accept, then a second save replaces that word: changed.
    three = predict(tasks[2], key, [dent])
    save(tenant, tasks[2], proposals=fates(three, "accepted"), submit=False)
    save(tenant, tasks[2], proposals=fates(three, "changed"))

    # 4. Submitted accepted, rejected by a reviewer (still counted as submitted) ...
    four = predict(tasks[3], key, [scratch])
    save(tenant, tasks[3], proposals=fates(four, "accepted"))
    workflow.review(tasks[3], tenant.user(Role.REVIEWER), verdict="reject", comment="redo")
    assert by_class(service.acceptance(version))["scratch"] == (2, 1, 1, 0)

    # 5. Saved but never submitted: a draft says nothing yet.
    five = predict(tasks[4], key, [scratch, dent])
    save(tenant, tasks[4], proposals=fates(five, "accepted", "accepted"), submit=False)

    # 6. Submitted by a script that never spoke of proposals: not counted.
    predict(tasks[5], key, [scratch])
    save(tenant, tasks[5], proposals=None)

    # 7. Other sources on a counted task and their fates: not this version's.
    for source in ("", "backend:3", new_version(tenant, "Other").source):
        other = predict(tasks[6], source, [scratch])
        save(tenant, tasks[6], proposals=fates(other, "dropped"), submit=False)
    save(tenant, tasks[6], proposals=None)

    # 8. Another organization's predictions under the same source string and its own label.
    stranger = predict(other_tenant.tasks[0], key, [other_tenant.label])
    save(other_tenant, other_tenant.tasks[0], proposals=fates(stranger, "accepted"))

    # ... 4. then re-submitted with the proposal dropped: the re-save replaces the earlier word.
    save(tenant, tasks[3], proposals=fates(four, "dropped"))

    found = service.acceptance(version)
    assert by_class(found) == {"scratch": (1, 1, 2, 0), "dent": (1, 1, 1, 1)}
    assert (found.tasks, found.proposals, counts(found)) == (4, 7, (2, 2, 3, 1))
    assert found.rate == pytest.approx(2 / 7)
    assert [row.name for row in found.classes] == ["scratch", "dent"]  # most proposals first
    assert found.classes[0].rate == pytest.approx(1 / 4)
    assert found.classes[1].rate == pytest.approx(1 / 3)
    # A reviewer's correction (a new current version, fates carried over) changes nothing.
    workflow.review(tasks[0], tenant.user(Role.REVIEWER), verdict="approve")
    save(tenant, tasks[1], submit=False, role=Role.REVIEWER)
    assert service.acceptance(version).as_dict() == found.as_dict()
    # The other organization's version sees only its own.
    assert service.acceptance_by_source(other_tenant.organization.pk, [key])[key].tasks == 1


def test_a_deleted_label_is_a_bucket_without_a_name(tenant: Tenant, version: ModelVersion) -> None:
    key = version.source
    gone = Label.objects.create(
        organization=tenant.organization, project=tenant.project, name="crack"
    )
    prediction = predict(tenant.tasks[0], key, [tenant.label, gone])
    save(tenant, tenant.tasks[0], proposals=fates(prediction, "accepted", "dropped"))
    gone.delete()
    found = service.acceptance(version)
    assert by_class(found) == {"scratch": (1, 0, 0, 0), None: (0, 0, 1, 0)}
    assert found.classes[-1].name is None


def test_many_versions_at_once_and_pre_annotating_again(
    tenant: Tenant, version: ModelVersion, queued: list[int]
) -> None:
    second = new_version(tenant)
    task = tenant.tasks[0]
    first_prediction = predict(task, version.source, [tenant.label])
    other = predict(task, second.source, [tenant.label, tenant.label])
    save(tenant, task, proposals=fates(first_prediction, "accepted") + fates(other, "changed"))
    found = service.acceptance_of_versions([version, second])
    assert counts(found[version.pk]) == (1, 0, 0, 0)
    assert counts(found[second.pk]) == (0, 1, 1, 1)
    # Pre-annotating again replaces the prediction (a new id): its fates are not its own.
    Prediction.objects.filter(pk=first_prediction.pk).delete()
    predict(task, version.source, [tenant.label])
    assert service.acceptance(version).tasks == 0


def test_the_api_answers_the_counts_and_another_organization_gets_404(
    tenant: Tenant, other_tenant: Tenant, version: ModelVersion
) -> None:
    prediction = predict(tenant.tasks[0], version.source, [tenant.label, tenant.label])
    save(tenant, tenant.tasks[0], proposals=fates(prediction, "accepted", "changed"))
    url = f"/api/models/{version.model_id}/versions/{version.number}/acceptance/"
    answer = client_for(tenant.user(Role.ANNOTATOR)).get(url)
    assert answer.status_code == 200
    assert answer.json() == {
        "tasks": 1,
        "proposals": 2,
        "kept": 1,
        "moved": 1,
        "deleted": 0,
        "left_out": 0,
        "rate": 0.5,
        "classes": [
            {
                "name": "scratch",
                "proposals": 2,
                "kept": 1,
                "moved": 1,
                "deleted": 0,
                "left_out": 0,
                "rate": 0.5,
            }
        ],
    }
    missing = f"/api/models/{version.model_id}/versions/9/acceptance/"
    assert client_for(tenant.user(Role.ANNOTATOR)).get(missing).status_code == 404
    assert client_for(other_tenant.user(Role.OWNER)).get(url).status_code == 404


def test_the_model_page_shows_each_versions_rate_and_classes_in_both_languages(
    tenant: Tenant, version: ModelVersion, queued: list[int]
) -> None:
    untried = new_version(tenant)  # ready, nothing decided: says so
    ModelVersion.objects.filter(pk=untried.pk).update(state=VersionState.READY)
    checking = new_version(tenant)  # validating, so it made no proposals: nothing to say
    dent = tenant.project.labels.get(name="dent")
    prediction = predict(tenant.tasks[0], version.source, [tenant.label, dent, dent])
    save(tenant, tenant.tasks[0], proposals=fates(prediction, "accepted", "changed"))
    url = f"/models/{version.model_id}/"
    html = signed_in(tenant.user(Role.ANNOTATOR)).get(url).content.decode()
    shown = html[html.index('id="acceptance-1"') :]
    shown = shown[: shown.index("</section>")]
    assert "Acceptance rate 33.3%" in shown and "3 proposals in 1 submitted task" in shown
    assert "<td>scratch</td>" in shown and "<td>dent</td>" in shown
    assert "(1 undecided)" in shown and "All classes" in shown
    empty = html[html.index(f'id="acceptance-{untried.number}"') :]
    assert "No proposals of this version were decided" in empty[: empty.index("</section>")]
    assert f'id="acceptance-{checking.number}"' not in html
    chinese = signed_in(tenant.user(Role.ANNOTATOR), "zh-hans").get(url).content.decode()
    assert "采纳率 33.3%" in chinese and "1 个已提交任务中的 3 个建议" in chinese
    assert "保留" in chinese and "修改" in chinese and "全部类别" in chinese
    assert "已提交的任务中还没有对该版本建议的处理" in chinese
