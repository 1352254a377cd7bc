"""The evaluation job on a real small project with the committed demo detector: its report is
`evaluation.evaluate` over the same detections and ground truth, its findings are stored ranked,
a retry replaces (never adds), a cancel stops it, a broken image is counted and named without
failing the run, and an empty project is refused at start."""

from __future__ import annotations

import json
from typing import Any

import pytest

from defectlab.errors import Forbidden, Invalid
from defectlab.evaluation import Sample, evaluate, shape_box
from defectlab.geometry import Shape
from defectlab.inference import registry
from defectlab.inference.models import DetectionModel
from defectlab.insight import evaluations, runs
from defectlab.insight.evaluations import MAX_DET, PREDICT_CONF, label_of_class
from defectlab.insight.models import Evaluation, EvaluationState, Finding
from defectlab.jobs.models import Job, JobState
from defectlab.jobs.runner import Cancelled, Progress
from defectlab.labeling.models import Annotation, Label, Project, Task, TaskStatus
from defectlab.media.storage import default_storage
from defectlab.synthetic import defect_images
from defectlab.tenancy.models import Role
from tests.conftest import Tenant, client_for, signed_in
from tests.insight.helpers import PANELS, SEED, approve, evaluate_now

pytestmark = pytest.mark.django_db


def box_iou(a: Any, b: Any) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union


def expected_report(project: Project, model: DetectionModel, conf: float) -> dict[str, Any]:
    """`evaluate` over the demo detector's detections, computed here on its own."""
    version = model.versions.get()
    classes = label_of_class(project, version)
    labels = sorted({label for label in classes if label is not None})
    detector = registry.load_detector(version)
    samples = []
    for task in Task.objects.filter(project=project).order_by("id"):
        found = detector.detect(
            default_storage().read(task.image), conf=PREDICT_CONF, max_det=MAX_DET
        )
        predictions = [
            shape_box(shape.clipped(found.width, found.height), classes[shape.label], shape.score)
            for shape in found.shapes()
            if classes[shape.label] is not None
        ]
        truths = [
            shape_box(shape, shape.label)
            for shape in map(Shape.from_dict, Annotation.objects.get(task=task).shapes)
        ]
        samples.append(Sample(task.pk, truths, predictions))
    # As stored: through JSON (tuples become lists).
    return json.loads(json.dumps(evaluate(samples, labels, conf=conf, max_det=MAX_DET).to_json()))


def test_the_report_is_evaluate_over_the_same_detections_and_findings_are_ranked(
    approved_panels: Project,
    manager: Any,
    demo_model: DetectionModel,
    drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    evaluation = evaluate_now(
        approved_panels, manager, demo_model, drain, django_capture_on_commit_callbacks
    )
    assert evaluation.state == EvaluationState.DONE, evaluation.error
    conf, _iou, _max = registry.thresholds(demo_model.versions.get())
    assert evaluation.conf == conf and not evaluation.conf_chosen
    assert evaluation.report == expected_report(approved_panels, demo_model, conf)
    assert evaluation.report["map50"] is not None
    assert (evaluation.images, evaluation.broken, evaluation.approved) == (PANELS, 0, PANELS)
    assert evaluation.approved_hash == evaluations.approved_snapshot(approved_panels)[1]
    assert evaluation.job is not None and evaluation.job.state == JobState.SUCCEEDED
    assert (evaluation.job.done, evaluation.job.total) == (PANELS, PANELS)
    found = list(Finding.objects.filter(evaluation=evaluation).order_by("rank"))
    assert [finding.rank for finding in found] == list(range(1, len(found) + 1))
    scores = [finding.score for finding in found]
    assert scores == sorted(scores, reverse=True)
    # The first panel's first defect was left out of its annotation: the model finds it there
    # (an "extra" confident prediction), its box the one drawn on the panel.
    first = Task.objects.filter(project=approved_panels).order_by("id").first()
    assert first is not None
    left_out = next(f for f in found if f.task_id == first.pk and f.kind == "extra")
    drawn = next(iter(defect_images(1, seed=SEED)))[2][0].box
    assert left_out.predicted_box is not None
    assert box_iou(left_out.predicted_box, drawn) > 0.5


def test_a_chosen_conf_and_an_evaluation_again_make_a_new_row(
    approved_panels: Project,
    manager: Any,
    demo_model: DetectionModel,
    drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    capture = django_capture_on_commit_callbacks
    one = evaluate_now(approved_panels, manager, demo_model, drain, capture)
    two = evaluate_now(approved_panels, manager, demo_model, drain, capture, conf=0.6)
    assert one.pk != two.pk and two.conf == 0.6 and two.conf_chosen
    assert two.report == expected_report(approved_panels, demo_model, 0.6)
    assert Evaluation.objects.filter(project=approved_panels).count() == 2
    compared = evaluations.compare(one, two)
    assert compared.same_ground_truth
    assert compared.setup_differences == ["conf"]  # the same ground truth, another threshold
    again = evaluate_now(approved_panels, manager, demo_model, drain, capture)
    assert evaluations.compare(one, again).setup_differences == []
    Evaluation.objects.filter(pk=again.pk).update(broken=1, images=again.images - 1, tile=True)
    again.refresh_from_db()
    assert evaluations.compare(one, again).setup_differences == ["tile", "images"]
    assert compared.overall["map50"] == 0.0  # mAP does not depend on the threshold
    assert {row.label for row in compared.classes} == {int(k) for k in one.report["classes"]}
    # The ground truth changes: a task is sent back; the comparison says so.
    first = Task.objects.filter(project=approved_panels).order_by("id")[0]
    Task.objects.filter(pk=first.pk).update(status=TaskStatus.REJECTED)
    three = evaluate_now(approved_panels, manager, demo_model, drain, capture, version=1)
    assert three.approved == PANELS - 1
    assert not evaluations.compare(one, three).same_ground_truth


def test_a_retry_replaces_the_findings_and_a_cancel_stops_the_run(
    approved_panels: Project,
    manager: Any,
    demo_model: DetectionModel,
    drain: Any,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    evaluation = evaluate_now(
        approved_panels, manager, demo_model, drain, django_capture_on_commit_callbacks
    )
    first = list(
        Finding.objects.filter(evaluation=evaluation).values_list("task_id", "kind", "rank")
    )
    job = Job.objects.get(pk=evaluation.job_id)
    runs.run_evaluation(job, Progress(job))  # delivered again: the same, not twice as many
    again = list(
        Finding.objects.filter(evaluation=evaluation).values_list("task_id", "kind", "rank")
    )
    assert again == first and first

    real = runs.findings

    def cancel_meanwhile(sample: Any, **options: Any) -> Any:
        Job.objects.filter(pk=evaluation.job_id).update(cancel_requested=True)
        return real(sample, **options)

    monkeypatch.setattr(runs, "findings", cancel_meanwhile)
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
    with pytest.raises(Cancelled):
        runs.run_evaluation(job, Progress(job))
    # Cancelled before its end: the attempt wrote nothing (the earlier findings went).
    assert not Finding.objects.filter(evaluation=evaluation).exists()


def test_a_cancelled_job_fails_its_evaluation(
    approved_panels: Project,
    manager: Any,
    demo_model: DetectionModel,
    queued: list[int],
    drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        evaluation = evaluations.start_evaluation(
            approved_panels, manager, model=demo_model, alias="production"
        )
    Job.objects.filter(pk=evaluation.job_id).update(cancel_requested=True)
    drain()
    evaluation.refresh_from_db()
    assert evaluation.state == EvaluationState.FAILED
    assert evaluation.error_code == "cancelled" and evaluation.error


def test_a_broken_image_is_counted_and_named_and_the_rest_evaluated(
    approved_panels: Project,
    manager: Any,
    demo_model: DetectionModel,
    drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    tasks = list(Task.objects.filter(project=approved_panels).order_by("id"))
    default_storage().delete(tasks[1].image)
    default_storage().save(tasks[2].image, b"not an image")
    evaluation = evaluate_now(
        approved_panels, manager, demo_model, drain, django_capture_on_commit_callbacks
    )
    assert evaluation.state == EvaluationState.DONE, evaluation.error
    assert (evaluation.images, evaluation.broken) == (PANELS - 2, 2)
    assert [error["task"] for error in evaluation.errors] == [tasks[1].pk, tasks[2].pk]
    assert all(error["error"] for error in evaluation.errors)
    assert evaluation.report["images"] == PANELS - 2
    assert Job.objects.get(pk=evaluation.job_id).failed == 2


def test_an_empty_project_and_a_model_of_no_mapped_class_are_refused(
    panels: Project, manager: Any, demo_model: DetectionModel, tenant: Tenant
) -> None:
    with pytest.raises(Invalid) as refused:
        evaluations.start_evaluation(panels, manager, model=demo_model, alias="production")
    assert refused.value.code == "no_approved_tasks"
    approve(panels)
    for label in panels.labels.all():  # no class name matches a label any more
        label.name = f"other {label.pk}"
        label.save()
    with pytest.raises(Invalid) as refused:
        evaluations.start_evaluation(panels, manager, model=demo_model, alias="production")
    assert refused.value.code == "no_mapped_classes"
    assert not Evaluation.objects.exists()


def test_only_managers_start_and_another_project_is_not_compared(
    approved_panels: Project,
    manager: Any,
    demo_model: DetectionModel,
    tenant: Tenant,
    drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with pytest.raises(Forbidden):
        evaluations.start_evaluation(
            approved_panels, tenant.user(Role.REVIEWER), model=demo_model, alias="production"
        )
    one = evaluate_now(
        approved_panels, manager, demo_model, drain, django_capture_on_commit_callbacks
    )
    other = Evaluation.objects.create(
        organization=tenant.organization,
        project=tenant.project,
        model_name="m",
        version_number=1,
        conf=0.25,
        iou=0.7,
        state=EvaluationState.DONE,
        report=one.report,
    )
    with pytest.raises(Invalid):
        evaluations.compare(one, other)


def test_an_evaluation_outlives_its_deleted_model(
    approved_panels: Project,
    manager: Any,
    demo_model: DetectionModel,
    drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    evaluation = evaluate_now(
        approved_panels, manager, demo_model, drain, django_capture_on_commit_callbacks
    )
    demo_model.aliases.all().delete()
    demo_model.delete()
    evaluation.refresh_from_db()
    assert evaluation.version is None and evaluation.model_name == "Demo detector"
    assert evaluation.state == EvaluationState.DONE and evaluation.findings.exists()


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_label_no_class_maps_to_is_named_and_no_false_extra_is_made_of_it(
    approved_panels: Project,
    manager: Any,
    demo_model: DetectionModel,
    drain: Any,
    django_capture_on_commit_callbacks: Any,
    language: str,
) -> None:
    # The first panel's left-out defect is labeled "rust", a label the model has no class for.
    rust = Label.objects.create(
        organization_id=approved_panels.organization_id, project=approved_panels, name="rust"
    )
    first = Task.objects.filter(project=approved_panels).order_by("id").first()
    assert first is not None
    drawn = next(iter(defect_images(1, seed=SEED)))[2][0].box
    annotation = Annotation.objects.get(task=first)
    rusty = Shape.box(*drawn, label=rust.pk, id="rust-1").to_dict()
    Annotation.objects.filter(pk=annotation.pk).update(shapes=[*annotation.shapes, rusty])
    evaluation = evaluate_now(
        approved_panels, manager, demo_model, drain, django_capture_on_commit_callbacks
    )
    assert evaluation.state == EvaluationState.DONE, evaluation.error
    # The model's prediction on the rust shape is not a label error ("extra"), nor anything else.
    on_first = Finding.objects.filter(evaluation=evaluation, task=first)
    assert not [f for f in on_first if f.predicted_box and box_iou(f.predicted_box, drawn) > 0.5]
    assert not on_first.filter(truth_label=rust.pk).exists()
    # Kept out of the metrics, and said so.
    assert str(rust.pk) not in evaluation.report["classes"]
    assert evaluation.setup["not_evaluated"] == {str(rust.pk): 1}
    assert rust.pk not in evaluation.setup["labels"]
    assert evaluation.setup["classes"] and all(
        len(pair) == 2 for pair in evaluation.setup["classes"]
    )
    assert evaluation.findings_found >= Finding.objects.filter(evaluation=evaluation).count()
    html = signed_in(manager, language).get(f"/evaluations/{evaluation.pk}/").content.decode()
    if language == "zh-hans":
        assert "未评估：rust（1 个形状）" in html
    else:
        assert "Not evaluated: rust (1 shape) — no model class maps to it." in html
    api = client_for(manager).get(f"/api/evaluations/{evaluation.pk}/").json()
    assert api["setup"]["not_evaluated"] == {str(rust.pk): 1}


def test_the_run_uses_the_recorded_iou_and_a_deleted_version_offers_no_retry(
    approved_panels: Project,
    manager: Any,
    demo_model: DetectionModel,
    drain: Any,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    load = runs.load_detector

    def spying(version: Any) -> Any:
        detector = load(version)
        stream = detector.detect_stream

        def detect_stream(images: Any, **options: Any) -> Any:
            seen.append(options.get("iou"))
            return stream(images, **options)

        monkeypatch.setattr(detector, "detect_stream", detect_stream)
        return detector

    monkeypatch.setattr(runs, "load_detector", spying)
    with django_capture_on_commit_callbacks(execute=True):
        evaluation = evaluations.start_evaluation(
            approved_panels, manager, model=demo_model, alias="production"
        )
    # The recorded IoU (a sensitivity changed while queued must not desync it).
    Evaluation.objects.filter(pk=evaluation.pk).update(iou=0.33)
    drain()
    assert seen and set(seen) == {0.33}
    # A version deleted while queued: the evaluation fails, and Retry is not offered.
    with django_capture_on_commit_callbacks(execute=True):
        gone = evaluations.start_evaluation(
            approved_panels, manager, model=demo_model, alias="production"
        )
    Evaluation.objects.filter(pk=gone.pk).update(version=None)
    drain()
    gone.refresh_from_db()
    assert gone.state == EvaluationState.FAILED
    html = signed_in(manager).get(f"/evaluations/{gone.pk}/").content.decode()
    assert 'id="retry-evaluation"' not in html
    # Nor anywhere else: the API answers 409 with the reason, the job pages show it.
    assert gone.job_id is not None
    api = client_for(manager)
    for language, reason in (
        ("en", "The model version was deleted: start a new evaluation with another version."),
        ("zh-hans", "模型版本已被删除：请用其他版本开始新的评估。"),
    ):
        signed_in(manager, language)  # the language they chose, which the API speaks too
        answer = api.post(f"/api/jobs/{gone.job_id}/retry/")
        assert answer.status_code == 409
        assert answer.json()["error"] == {"code": "not_retryable", "message": reason}
    assert Job.objects.get(pk=gone.job_id).state == JobState.FAILED
    page = signed_in(manager, "en")
    for url in (f"/evaluations/{gone.pk}/", f"/jobs/{gone.job_id}/"):
        html = page.get(url).content.decode()
        assert 'id="retry-refusal"' in html and f"/jobs/{gone.job_id}/retry/" not in html, url
    rows = page.get(f"/o/{approved_panels.organization_id}/jobs/").content.decode()
    assert f"/jobs/{gone.job_id}/retry/" not in rows and "start a new evaluation" in rows
    # The evaluation the first job ran is still there with its version: that job may run again.
    first = Job.objects.get(pk=evaluation.job_id)
    Job.objects.filter(pk=first.pk).update(state=JobState.FAILED)
    assert f"/jobs/{first.pk}/retry/" in page.get(f"/jobs/{first.pk}/").content.decode()
    # Once the evaluation itself is deleted, its job is not offered again either.
    evaluations.delete_evaluation(evaluation, manager)
    answer = api.post(f"/api/jobs/{first.pk}/retry/")
    assert answer.status_code == 409
    assert answer.json()["error"]["message"] == "The evaluation was deleted."
