"""The pages as a person uses them: sign in, join by invite, browse projects and tasks."""

from __future__ import annotations

import pytest
from django.test import Client

from defectlab.tenancy.models import Membership, Role, User
from defectlab.tenancy.services import create_invite
from tests.conftest import Tenant, annotate
from tests.test_i18n import catalog

PASSWORD = "a-long-password-1"


def signed_in(user: User, language: str = "en") -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(user)
    return client


def test_logging_in_lands_on_the_organization_with_its_projects(tenant: Tenant) -> None:
    client = Client()
    page = client.post("/login/", {"email": "owner@acme.test", "password": PASSWORD}, follow=True)
    assert page.status_code == 200
    assert "Acme project" in page.content.decode()
    assert page.redirect_chain[-1][0] == f"/o/{tenant.organization.pk}/"


def test_a_wrong_password_shows_the_reason_on_the_form(tenant: Tenant) -> None:
    page = Client().post("/login/", {"email": "owner@acme.test", "password": "nope"})
    assert page.status_code == 400
    assert "E-mail or password is wrong." in page.content.decode()


def test_pages_need_a_session(tenant: Tenant) -> None:
    response = Client().get(f"/projects/{tenant.project.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_login_never_redirects_to_another_site(tenant: Tenant) -> None:
    response = Client().post(
        "/login/?next=https://evil.example/",
        {"email": "owner@acme.test", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert response["Location"] == "/"


def test_an_invite_link_signs_up_and_opens_the_organization(tenant: Tenant) -> None:
    _invite, token = create_invite(tenant.user(Role.OWNER), tenant.organization, Role.ANNOTATOR)
    client = Client()
    page = client.get(f"/invite/{token}/")
    assert "Join Acme" in page.content.decode()
    joined = client.post(
        f"/invite/{token}/",
        {"name": "Wang", "email": "wang@acme.test", "password": "correct horse battery"},
        follow=True,
    )
    assert joined.redirect_chain[-1][0] == f"/o/{tenant.organization.pk}/"
    assert Membership.objects.get(user__email="wang@acme.test").role == Role.ANNOTATOR


def test_a_used_invite_link_says_so(tenant: Tenant) -> None:
    page = Client().get("/invite/not-a-token/")
    assert page.status_code == 404
    assert "not valid any more" in page.content.decode()


def test_project_page_lists_tasks_with_thumbnails_and_status(tenant: Tenant) -> None:
    annotate(tenant, tenant.tasks[0])
    page = signed_in(tenant.user(Role.ANNOTATOR)).get(f"/projects/{tenant.project.pk}/")
    html = page.content.decode()
    assert html.count('class="thumb"') == 3
    assert "Submitted" in html and "img_0000.png" in html


def test_project_filters_narrow_the_table(tenant: Tenant) -> None:
    annotate(tenant, tenant.tasks[0])
    client = signed_in(tenant.user(Role.ANNOTATOR))
    html = client.get(f"/projects/{tenant.project.pk}/?status=submitted").content.decode()
    assert "img_0000.png" in html and "img_0001.png" not in html
    bad = client.get(f"/projects/{tenant.project.pk}/?status=bogus", follow=True)
    assert "Unknown status bogus." in bad.content.decode()


def test_load_more_fetches_the_next_rows_only(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.ANNOTATOR))
    first = client.get(f"/projects/{tenant.project.pk}/?page_size=2").content.decode()
    assert "img_0002.png" not in first and "Load more" in first
    cursor = first.split("cursor=")[1].split('"')[0]
    more = client.get(
        f"/projects/{tenant.project.pk}/?page_size=2&cursor={cursor}",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="more-row",  # what the Load more button sends
    ).content.decode()
    assert "img_0002.png" in more and "<html" not in more and "Load more" not in more


def test_a_manager_assigns_selected_tasks_but_an_annotator_cannot(tenant: Tenant) -> None:
    annotator = tenant.user(Role.ANNOTATOR)
    task_ids = [str(task.pk) for task in tenant.tasks[:2]]
    url = f"/projects/{tenant.project.pk}/assign/"
    signed_in(tenant.user(Role.MANAGER)).post(url, {"tasks": task_ids, "assignee": annotator.pk})
    assert tenant.project.tasks.filter(assignee=annotator).count() == 2
    refused = signed_in(annotator).post(url, {"tasks": task_ids, "assignee": ""}, follow=True)
    assert "Your role does not allow this." in refused.content.decode()
    assert tenant.project.tasks.filter(assignee=annotator).count() == 2


def test_switching_language_is_remembered_for_the_person(tenant: Tenant) -> None:
    annotator = tenant.user(Role.ANNOTATOR)
    client = signed_in(annotator)
    client.post("/language/", {"language": "zh-hans", "next": "/"})
    annotator.refresh_from_db()
    assert annotator.language == "zh-hans"
    html = signed_in(annotator, "en").get(f"/projects/{tenant.project.pk}/").content.decode()
    assert "筛选" in html and "退出登录" in html


def test_chinese_pages_show_no_english_interface_text(tenant: Tenant) -> None:
    annotate(tenant, tenant.tasks[0])
    _invite, token = create_invite(tenant.user(Role.OWNER), tenant.organization, Role.ANNOTATOR)
    owner = signed_in(tenant.user(Role.OWNER), "zh-hans")
    pages = [
        owner.get(f"/o/{tenant.organization.pk}/"),
        owner.get(f"/projects/{tenant.project.pk}/?page_size=1"),
        owner.get(f"/projects/{tenant.project.pk}/settings/"),
        owner.get(f"/o/{tenant.organization.pk}/members/"),
        owner.get(f"/o/{tenant.organization.pk}/projects/new/"),
        owner.get("/account/"),
        Client(HTTP_ACCEPT_LANGUAGE="zh-hans").get("/login/"),
        Client(HTTP_ACCEPT_LANGUAGE="zh-hans").get(f"/invite/{token}/"),
    ]
    english = [
        entry.msgid
        for entry in catalog().translated_entries()
        if len(entry.msgid) > 3
        and entry.msgid != entry.msgstr
        and "%" not in entry.msgid
        # The demo's class names are data it writes (these fixtures have a "scratch" too).
        and not (entry.msgctxt or "").startswith("demo")
    ]
    for page in pages:
        html = page.content.decode()
        assert 'lang="zh-hans"' in html
        leaked = [text for text in english if f">{text}<" in html]
        assert not leaked, f"{page.wsgi_request.path}: {leaked}"


def test_account_page_changes_name_language_and_password(tenant: Tenant) -> None:
    user = tenant.user(Role.REVIEWER)
    client = signed_in(user)
    client.post("/account/", {"action": "profile", "name": "Zhou", "language": "zh-hans"})
    user.refresh_from_db()
    assert (user.name, user.language) == ("Zhou", "zh-hans")
    wrong = client.post("/account/", {"action": "password", "current": "x", "new": "y" * 12})
    assert "当前密码不正确。" in wrong.content.decode()
    client.post(
        "/account/", {"action": "password", "current": PASSWORD, "new": "a brand new secret"}
    )
    user.refresh_from_db()
    assert user.check_password("a brand new secret")
    assert client.get("/account/").status_code == 200  # the session survived


def test_api_token_from_the_account_page_is_shown_once_and_can_be_revoked(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.ANNOTATOR))
    created = client.post("/account/", {"action": "create_token", "name": "camera script"})
    key = created.content.decode().split('id="new-token">')[1].split("<")[0]
    assert key.startswith("dl_")
    assert key not in client.get("/account/").content.decode()
    token = tenant.user(Role.ANNOTATOR).api_tokens.get()
    client.post("/account/", {"action": "revoke_token", "token": token.pk})
    assert not tenant.user(Role.ANNOTATOR).api_tokens.exists()


def test_the_task_table_sorts_by_file_name(tenant: Tenant) -> None:
    names = {
        task.pk: name for task, name in zip(tenant.tasks, ["c.png", "a.png", "b.png"], strict=False)
    }
    for task in tenant.tasks:
        task.file_name = names[task.pk]
        task.save()
    html = (
        signed_in(tenant.user(Role.OWNER))
        .get(f"/projects/{tenant.project.pk}/?sort=file_name")
        .content.decode()
    )
    assert html.index("a.png") < html.index("b.png") < html.index("c.png")
    assert '<option value="file_name" selected>' in html


def test_the_task_list_says_how_many_tasks_its_filters_match(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from defectlab.labeling import tasklist

    client = signed_in(tenant.user(Role.MANAGER), "zh-hans")
    page = f"/projects/{tenant.project.pk}/"
    total = len(tenant.tasks)

    def said(**params: str) -> str:
        html = client.get(page, params).content.decode()
        return html.split('id="result-count" aria-live="polite">')[1].split("</p>")[0]

    assert said() == f"{total} 个任务符合"  # the stored counters
    annotate(tenant, tenant.tasks[0])
    assert said(status="submitted") == "1 个任务符合"
    assert said(status="new,new") == f"{total - 1} 个任务符合"
    assert said(has_annotation="false") == f"{total - 1} 个任务符合"  # counted
    monkeypatch.setattr(tasklist, "COUNT_CAP", 1)
    assert said(has_annotation="false") == "超过 1 个任务符合"


def test_filters_apply_as_they_change_and_keep_the_page_address(tenant: Tenant) -> None:
    html = signed_in(tenant.user(Role.MANAGER)).get(f"/projects/{tenant.project.pk}/").content
    form = html.decode().split('id="filters"')[1].split(">")[0]
    assert 'hx-trigger="change"' in form and 'hx-select="#task-list"' in form
    assert 'hx-push-url="true"' in form


def test_an_empty_project_invites_a_manager_to_add_images(tenant: Tenant) -> None:
    from defectlab.labeling import services

    empty = services.create_project(tenant.organization, tenant.user(Role.OWNER), name="Line 4")
    manager_view = signed_in(tenant.user(Role.MANAGER)).get(f"/projects/{empty.pk}/")
    html = manager_view.content.decode()
    assert 'id="empty-project"' in html and f'href="/projects/{empty.pk}/data/"' in html
    annotator_view = signed_in(tenant.user(Role.ANNOTATOR)).get(f"/projects/{empty.pk}/")
    assert "A manager of this project adds the images" in annotator_view.content.decode()
    busy = signed_in(tenant.user(Role.MANAGER)).get(f"/projects/{tenant.project.pk}/")
    assert 'id="empty-project"' not in busy.content.decode()
