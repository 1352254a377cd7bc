"""The demo speaks the installation's default language: classes, attributes, instructions and
names (its detector's proposals: tests/inference/test_demo_detector.py)."""

from __future__ import annotations

import pytest

from defectlab.labeling.demo import create_demo
from defectlab.labeling.models import Prediction
from defectlab.tenancy.models import User

pytestmark = pytest.mark.django_db


def test_the_demo_of_a_chinese_installation_is_in_chinese(settings) -> None:  # type: ignore[no-untyped-def]
    settings.LANGUAGE_CODE = "zh-hans"
    User.objects.create_user("admin@plant.test", "a-long-password-1")
    project = create_demo("admin@plant.test", images=4)
    assert project.organization.name == "演示工厂"
    assert project.name == "面板表面检测"
    assert "划痕" in project.instructions and "scratch" not in project.instructions
    labels = list(project.labels.all())
    assert [label.name for label in labels] == ["划痕", "凹坑", "污渍"]
    assert all(
        label.attributes
        == [{"name": "严重程度", "options": ["轻微", "较重", "严重"], "default": "轻微"}]
        for label in labels
    )
    assert not Prediction.objects.filter(task__project=project).exists()  # the detector's job
    # Asked again, it is the same demo, not a second one.
    assert create_demo("admin@plant.test", images=4).pk == project.pk


def test_the_demo_of_an_english_installation_is_in_english(settings) -> None:  # type: ignore[no-untyped-def]
    settings.LANGUAGE_CODE = "en"
    User.objects.create_user("admin@plant.test", "a-long-password-1")
    project = create_demo("admin@plant.test", images=1)
    assert (project.organization.name, project.name) == ("Demo Factory", "Panel surface inspection")
    assert [label.name for label in project.labels.all()] == ["scratch", "dent", "stain"]
