"""Shared fixtures: two organizations with a member of every role, a project with tasks each."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from PIL import Image
from rest_framework.test import APIClient

from defectlab.geometry import Shape
from defectlab.ingest.uploads import checked_image
from defectlab.jobs.queue import RetryLater
from defectlab.jobs.runner import run_job
from defectlab.labeling import services, workflow
from defectlab.labeling.models import Label, Project, Task
from defectlab.tenancy.models import Membership, Organization, Role, User
from defectlab.tenancy.services import create_organization

# No timing in tests (bench/ measures speed): hypothesis's per-example deadline and its
# too-slow check would fail on a busy CI machine, not on a wrong answer.
# In CI the examples are derandomized, so a run is repeatable; locally they vary and keep
# looking for new counterexamples.
hypothesis_settings.register_profile(
    "defectlab",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("CI") == "true",
)
hypothesis_settings.load_profile("defectlab")

ROLES = [Role.OWNER, Role.ADMIN, Role.MANAGER, Role.REVIEWER, Role.ANNOTATOR]


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    """A Chinese page or request leaves Chinese active in the test's thread: every test ends
    with the default language again, so the next one reads the messages it expects."""
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def commands_log_on_stderr_afterwards() -> Iterator[None]:
    """A server command run in the test's process (`serve`, `worker`, `serve-inference` through
    CliRunner) sends the logs to stdout for the rest of the process, as it should in its own:
    every test ends with the other commands' stderr again, so a later command's output is its
    own."""
    yield
    from defectlab.logs import RoleStream

    RoleStream.server = False


@pytest.fixture(autouse=True)
def storage_dir(tmp_path: Path, settings) -> Path:  # type: ignore[no-untyped-def]
    settings.STORAGE_DIR = tmp_path / "storage"
    return settings.STORAGE_DIR


def png_bytes(
    width: int = 64, height: int = 48, color: tuple[int, int, int] = (90, 90, 90)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 110, 100)).save(buffer, "JPEG")
    return buffer.getvalue()


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def signed_in(user: User, language: str = "en") -> Client:
    """A browser's client signed in as ``user``, who has chosen ``language`` for the pages."""
    user.language = language
    user.save(update_fields=["language"])
    client = Client()
    client.force_login(user)
    return client


def make_tasks(project: Project, count: int, width: int = 64, height: int = 48) -> list[Task]:
    images = [
        checked_image(f"img_{index:04d}.png", png_bytes(width, height)) for index in range(count)
    ]
    return services.create_uploaded_tasks(project, images)


@dataclass
class Tenant:
    organization: Organization
    members: dict[str, User]
    project: Project
    label: Label
    tasks: list[Task] = field(default_factory=list)

    def user(self, role: str) -> User:
        return self.members[role]


def make_tenant(name: str, tasks: int = 3) -> Tenant:
    slug = name.lower()
    owner = User.objects.create_user(
        f"owner@{slug}.test", "a-long-password-1", name=f"{name} owner"
    )
    organization = create_organization(name, owner)
    members: dict[str, User] = {Role.OWNER: owner}
    for role in ROLES[1:]:
        user = User.objects.create_user(
            f"{role}@{slug}.test", "a-long-password-1", name=f"{name} {role}"
        )
        Membership.objects.create(organization=organization, user=user, role=role)
        members[role] = user
    project = services.create_project(
        organization,
        owner,
        name=f"{name} project",
        tags=["OK", "NG"],
        labels=[
            {
                "name": "scratch",
                "hotkey": "1",
                "attributes": [
                    {"name": "severity", "options": ["minor", "major"], "default": "minor"}
                ],
            },
            {"name": "dent", "hotkey": "2"},
        ],
    )
    label = project.labels.get(name="scratch")
    return Tenant(organization, members, project, label, make_tasks(project, tasks))


@pytest.fixture
def tenant(db) -> Tenant:  # type: ignore[no-untyped-def]
    return make_tenant("Acme")


@pytest.fixture
def other_tenant(db) -> Tenant:  # type: ignore[no-untyped-def]
    return make_tenant("Globex")


def box(label: Label | int, x1: float = 5, y1: float = 5, x2: float = 20, y2: float = 20) -> dict:  # type: ignore[type-arg]
    return Shape.box(x1, y1, x2, y2, label=label if isinstance(label, int) else label.pk).to_dict()


def annotate(tenant: Tenant, task: Task, *, submit: bool = True) -> None:
    workflow.save_annotation(
        task,
        tenant.user(Role.ANNOTATOR),
        base_version=None,
        shapes=[box(tenant.label)],
        submit=submit,
    )


@pytest.fixture
def api() -> APIClient:
    return APIClient()


__all__ = ["settings"]


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Job ids sent to the queue (after their commit), in order; no worker runs them."""
    ids: list[int] = []
    monkeypatch.setattr("defectlab.jobs.services.send", ids.append)
    return ids


@pytest.fixture
def drain(
    queued: list[int], django_capture_on_commit_callbacks: Any
) -> Callable[..., list[RetryLater]]:
    """Run every queued job here, as a worker would, the ones they queue too; a job that asks
    to be retried is run again (Dramatiq would, after the pause it asked for). Answers the
    retry requests seen, in order."""

    def run(*, retries: bool = True) -> list[RetryLater]:
        asked: list[RetryLater] = []
        while queued:
            job_id = queued.pop(0)
            with django_capture_on_commit_callbacks(execute=True):
                try:
                    run_job(job_id)
                except RetryLater as later:
                    asked.append(later)
                    if retries:
                        queued.append(job_id)
        return asked

    return run
