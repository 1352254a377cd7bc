"""The workspace page passes label-error highlights to the canvas: those of the finding named by
``?finding=<id>`` (web.workspace.finding_highlights, the slot label-error finding fills), none
without one, and none in the JSON config the canvas asks for when it moves on."""

from __future__ import annotations

from typing import Any

import pytest

from defectlab.labeling.models import Task
from defectlab.tenancy.models import Role, User
from tests.conftest import Tenant
from tests.web.test_workspace_page import config_of, signed_in

HIGHLIGHTS = [
    {"box": [4, 5, 30, 20], "kind": "missing", "text": "A scratch is not labelled.", "shape": ""},
    {"box": [1, 1, 9, 9], "kind": "loose_box", "text": "The box is too big.", "shape": "s1"},
]


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """What the slot was asked (task, finding, user), answering HIGHLIGHTS."""
    calls: list[tuple[int, int, int]] = []

    def highlights(task: Task, finding_id: int, user: User) -> list[dict[str, Any]]:
        calls.append((task.pk, finding_id, user.pk))
        return HIGHLIGHTS

    monkeypatch.setattr("defectlab.web.workspace.finding_highlights", highlights)
    return calls


def test_a_finding_in_the_address_brings_its_highlights(
    tenant: Tenant, asked: list[tuple[int, int, int]]
) -> None:
    task, reviewer = tenant.tasks[0], tenant.user(Role.REVIEWER)
    html = signed_in(reviewer).get(f"/tasks/{task.pk}/review/?finding=42").content.decode()
    assert config_of(html)["highlights"] == HIGHLIGHTS
    assert asked == [(task.pk, 42, reviewer.pk)]


def test_without_a_finding_there_are_none_and_nothing_is_asked(
    tenant: Tenant, asked: list[tuple[int, int, int]]
) -> None:
    task, client = tenant.tasks[0], signed_in(tenant.user(Role.ANNOTATOR))
    for address in (f"/tasks/{task.pk}/annotate/", f"/tasks/{task.pk}/annotate/?finding=x1"):
        assert config_of(client.get(address).content.decode())["highlights"] == []
    assert client.get(f"/tasks/{task.pk}/annotate/config/").json()["highlights"] == []
    assert asked == []


def test_odd_finding_numbers_are_no_finding_never_an_error(
    tenant: Tenant, asked: list[tuple[int, int, int]]
) -> None:
    task, client = tenant.tasks[0], signed_in(tenant.user(Role.ANNOTATOR))
    for finding in ("²", "١٢", "٣", "1" * 19, "-1", " 1", ""):
        answer = client.get(f"/tasks/{task.pk}/annotate/", {"finding": finding})
        assert answer.status_code == 200, finding
        assert config_of(answer.content.decode())["highlights"] == []
    assert asked == []
    answer = client.get(f"/tasks/{task.pk}/annotate/", {"finding": "9" * 18})
    assert config_of(answer.content.decode())["highlights"] == HIGHLIGHTS
    assert asked == [(task.pk, int("9" * 18), tenant.user(Role.ANNOTATOR).pk)]
