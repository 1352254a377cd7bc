"""The `defectlab` command as an operator uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from defectlab.cli import main
from defectlab.labeling.models import Prediction, Project, Task
from defectlab.tenancy.models import Membership, Role, User

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), prog_name="defectlab")
    return result.exit_code, result.output


def test_createadmin_prints_a_generated_password_once_and_it_works(settings) -> None:  # type: ignore[no-untyped-def]
    settings.ADMIN_PASSWORD = ""
    code, output = run("createadmin", "--email", "Boss@Plant.test")
    assert code == 0
    password = output.split("password is ")[1].split(" ")[0]
    user = User.objects.get(email="boss@plant.test")
    assert user.check_password(password)
    code, again = run("createadmin", "--email", "boss@plant.test")
    assert code == 0 and "already exists" in again and password not in again


def test_createadmin_takes_the_password_from_the_environment(settings) -> None:  # type: ignore[no-untyped-def]
    settings.ADMIN_PASSWORD = "from-the-environment-1"
    code, output = run("createadmin", "--email", "ops@plant.test")
    assert code == 0 and "from-the-environment-1" not in output
    assert User.objects.get(email="ops@plant.test").check_password("from-the-environment-1")


def test_demo_builds_a_project_with_synthetic_images_and_proposals_once() -> None:
    User.objects.create_user("admin@example.com", "x" * 12)
    code, output = run("demo", "--email", "admin@example.com", "--images", "6")
    assert code == 0, output
    project = Project.objects.get()
    assert project.task_count == Task.objects.count() == 6
    assert {label.name for label in project.labels.all()} == {"scratch", "dent", "stain"}
    assert Membership.objects.get(organization=project.organization).role == Role.OWNER
    assert Prediction.objects.filter(task__project=project).count() == 6
    assert all(task.width == 640 and task.height == 480 for task in Task.objects.all())
    run("demo", "--email", "admin@example.com", "--images", "6")
    assert Task.objects.count() == 6


def test_demo_without_the_account_says_what_to_do() -> None:
    code, output = run("demo", "--email", "nobody@example.com")
    assert code == 1
    assert "run `defectlab createadmin` first" in output


def test_check_passes_on_a_migrated_database() -> None:
    code, output = run("check")
    assert code == 0, output
    assert "Configuration is fine" in output


def test_check_explains_a_bad_value_in_plain_words(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PROBLEMS = ["DEFECTLAB_PORT='eighty' is not valid (expected a whole number)."]
    code, output = run("check")
    assert code == 1
    assert "DEFECTLAB_PORT" in output


def test_a_bad_setting_is_reported_not_raised(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import defectlab.config as product

    monkeypatch.setenv("DEFECTLAB_TEST_NUMBER", "many")
    problems_before = list(product.PROBLEMS)
    value = product.env("DEFECTLAB_TEST_NUMBER", "3", "a test", product.positive_int)
    assert value == 3
    assert "DEFECTLAB_TEST_NUMBER='many' is not valid" in product.PROBLEMS[-1]
    product.PROBLEMS[:] = problems_before
    del product.SETTINGS["DEFECTLAB_TEST_NUMBER"]


@pytest.mark.parametrize("embedded", [True, False])
def test_serve_supervises_its_worker_and_stops_it_on_shutdown(
    settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, embedded: bool
) -> None:
    """gunicorn itself is replaced (no port is bound in tests): its run() ends the way a
    SIGTERM ends it, with SystemExit. The supervisor is recorded, not started: it is tested
    with real worker processes in tests/jobs/test_supervisor.py."""

    from gunicorn.app.base import BaseApplication

    from defectlab.jobs import supervisor

    settings.WORKER_EMBEDDED = embedded
    settings.STATIC_ROOT = tmp_path / "static"
    # serve sets up its processes' shared metrics directory in the environment: this one, and
    # put back afterwards (tests/operations/test_metrics.py runs serve for real).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    events: list[object] = []

    class Recorder:
        def __init__(self, command: list[str] = (), *, target: Any = None) -> None:  # type: ignore[assignment]
            events.append(target or command)

        def start(self) -> None:
            events.append("start")

        def stop(self) -> None:
            events.append("stop")

    def gunicorn_run(self: object) -> None:
        events.append("serving")
        raise SystemExit(0)

    monkeypatch.setattr(supervisor, "WorkerSupervisor", Recorder)
    monkeypatch.setattr(BaseApplication, "run", gunicorn_run)
    import gc

    from defectlab.cli import embedded_worker

    try:
        code, output = run("serve", "--port", "18999")
    finally:
        gc.unfreeze()  # serve freezes what it loaded before forking; this process goes on
    assert code == 0, output
    # The embedded worker is this process forked (sharing what it loaded), not a new one.
    assert events == ([embedded_worker, "start", "serving", "stop"] if embedded else ["serving"])
