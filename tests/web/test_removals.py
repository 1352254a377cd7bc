"""Deleting from the pages: the project (typed name, then a job) and selected tasks; each asks
in the browser first."""

from __future__ import annotations

from django.test import Client

from defectlab.jobs.models import Job
from defectlab.labeling.models import Project, Task
from defectlab.tenancy.models import Role, User
from tests.conftest import Tenant


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_manager_deletes_a_project_by_typing_its_name(tenant: Tenant) -> None:
    manager = signed_in(tenant.user(Role.MANAGER))
    url = f"/projects/{tenant.project.pk}/delete/"
    settings_page = manager.get(f"/projects/{tenant.project.pk}/settings/").content.decode()
    assert 'id="delete-project"' in settings_page and "data-confirm=" in settings_page
    wrong = manager.post(url, {"name": "not its name"}, follow=True)
    assert "Type the project" in wrong.content.decode()
    assert Project.objects.filter(pk=tenant.project.pk).exists()
    done = manager.post(url, {"name": tenant.project.name}, follow=True)
    assert done.redirect_chain[-1][0] == f"/o/{tenant.organization.pk}/"
    assert "is deleted" in done.content.decode()
    assert not Project.objects.filter(pk=tenant.project.pk).exists()  # hidden at once
    assert Job.objects.filter(kind="project_delete", project=tenant.project).exists()
    assert manager.get(f"/projects/{tenant.project.pk}/").status_code == 404


def test_an_annotator_cannot_delete_a_project(tenant: Tenant) -> None:
    annotator = signed_in(tenant.user(Role.ANNOTATOR))
    annotator.post(f"/projects/{tenant.project.pk}/delete/", {"name": tenant.project.name})
    assert Project.objects.filter(pk=tenant.project.pk).exists()


def test_a_manager_deletes_the_selected_tasks_and_an_annotator_cannot(tenant: Tenant) -> None:
    url = f"/projects/{tenant.project.pk}/tasks/delete/"
    chosen = [str(task.pk) for task in tenant.tasks[:2]]
    page = signed_in(tenant.user(Role.MANAGER)).get(f"/projects/{tenant.project.pk}/")
    assert 'id="delete-tasks"' in page.content.decode()
    signed_in(tenant.user(Role.ANNOTATOR)).post(url, {"tasks": chosen})
    assert Task.objects.filter(pk__in=chosen).count() == 2
    done = signed_in(tenant.user(Role.MANAGER)).post(url, {"tasks": chosen}, follow=True)
    assert "2 tasks deleted." in done.content.decode()
    assert not Task.objects.filter(pk__in=chosen).exists()
    tenant.project.refresh_from_db()
    assert tenant.project.task_count == len(tenant.tasks) - 2
    nothing = signed_in(tenant.user(Role.MANAGER)).post(url, {}, follow=True)
    assert "Select the tasks to delete first." in nothing.content.decode()
