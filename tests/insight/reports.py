"""A finished evaluation made by hand (its report from `evaluation.evaluate` over a few boxes,
one label error): for pages that only show one."""

from __future__ import annotations

import json

from defectlab.evaluation import Box, Sample, evaluate
from defectlab.inference.models import ModelVersion
from defectlab.insight.models import Evaluation, EvaluationState, Finding
from defectlab.labeling.models import Project, Task


def evaluated(project: Project, version: ModelVersion, task: Task) -> Evaluation:
    labels = sorted(project.labels.values_list("id", flat=True))
    first, second = labels[0], labels[-1]
    samples = [
        Sample(1, [Box(2, 2, 20, 20, first)], [Box(2, 2, 19, 21, first, 0.9)]),
        Sample(2, [Box(5, 5, 30, 30, second)], [Box(5, 5, 30, 30, first, 0.7)]),
        Sample(3, [], [Box(1, 1, 9, 9, second, 0.4)]),
    ]
    report = json.loads(json.dumps(evaluate(samples, labels, conf=0.25).to_json()))
    evaluation = Evaluation.objects.create(
        organization_id=project.organization_id,
        project=project,
        version=version,
        model_name=version.model.name,
        version_number=version.number,
        alias="production",
        conf=0.25,
        iou=0.7,
        state=EvaluationState.DONE,
        approved=3,
        images=3,
        report=report,
    )
    Finding.objects.create(
        organization_id=project.organization_id,
        evaluation=evaluation,
        task=task,
        rank=1,
        kind="extra",
        score=0.9,
        predicted_label=first,
        predicted_box=[2, 2, 20, 20],
        predicted_score=0.9,
    )
    return evaluation
