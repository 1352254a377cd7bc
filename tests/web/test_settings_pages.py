"""Managers shape a project from the browser; admins manage people and invite links."""

from __future__ import annotations

from django.test import Client

from defectlab.labeling.models import Label, Project
from defectlab.tenancy.models import Invite, Membership, Role, User
from tests.conftest import Tenant, annotate


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_manager_creates_a_project_with_shape_types_and_tags(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.MANAGER))
    response = client.post(
        f"/o/{tenant.organization.pk}/projects/new/",
        {
            "name": "Welds",
            "shape_types": ["polygon"],
            "tags": "OK #2e7d32\nNG",
            "instructions": "Trace",
        },
    )
    project = Project.objects.get(name="Welds")
    assert response["Location"] == f"/projects/{project.pk}/settings/"
    assert project.shape_types == ["polygon"]
    assert project.tags == [{"name": "OK", "color": "#2e7d32"}, {"name": "NG", "color": "#757575"}]


def test_an_annotator_cannot_open_project_settings(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.ANNOTATOR))
    response = client.get(f"/projects/{tenant.project.pk}/settings/", follow=True)
    assert "Your role does not allow this." in response.content.decode()
    client.post(
        f"/projects/{tenant.project.pk}/settings/", {"action": "settings", "name": "Hacked"}
    )
    tenant.project.refresh_from_db()
    assert tenant.project.name == "Acme project"


def test_classes_are_added_edited_and_protected_from_deletion_while_used(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.MANAGER))
    url = f"/projects/{tenant.project.pk}/settings/"
    client.post(
        url,
        {
            "action": "add_label",
            "name": "crack",
            "color": "#00aa00",
            "hotkey": "3",
            "attributes": "severity: low, high\nside: top, bottom",
        },
    )
    crack = Label.objects.get(project=tenant.project, name="crack")
    assert crack.attributes[1] == {"name": "side", "options": ["top", "bottom"], "default": "top"}
    client.post(
        url,
        {
            "action": "update_label",
            "label": crack.pk,
            "name": "hairline crack",
            "hotkey": "4",
            "color": "#00aa00",
            "attributes": "",
        },
    )
    crack.refresh_from_db()
    assert (crack.name, crack.hotkey, crack.attributes) == ("hairline crack", "4", [])
    duplicate = client.post(url, {"action": "add_label", "name": "x", "hotkey": "4"}, follow=True)
    assert "Another label already uses hotkey 4." in duplicate.content.decode()
    annotate(tenant, tenant.tasks[0])
    used = client.post(url, {"action": "delete_label", "label": tenant.label.pk}, follow=True)
    assert "Annotations use this label" in used.content.decode()
    client.post(url, {"action": "delete_label", "label": crack.pk})
    assert not Label.objects.filter(pk=crack.pk).exists()


def test_an_admin_creates_an_invite_link_that_works(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.ADMIN))
    page = client.post(
        f"/o/{tenant.organization.pk}/members/", {"action": "invite", "role": "reviewer"}
    )
    html = page.content.decode()
    link = html.split('id="invite-link">')[1].split("<")[0]
    assert link.startswith("http://testserver/invite/")
    # Shown as the success it is, with a button that copies it.
    assert 'class="message success invite-created"' in html and 'id="copy-invite"' in html
    Client().post(link, {"email": "new@acme.test", "password": "correct horse battery"})
    assert Membership.objects.get(user__email="new@acme.test").role == Role.REVIEWER


def test_an_admin_changes_roles_and_revokes_invites_but_a_reviewer_cannot(tenant: Tenant) -> None:
    url = f"/o/{tenant.organization.pk}/members/"
    annotator = Membership.objects.get(
        organization=tenant.organization, user=tenant.user(Role.ANNOTATOR)
    )
    refused = signed_in(tenant.user(Role.REVIEWER)).post(
        url, {"action": "role", "membership": annotator.pk, "role": "admin"}, follow=True
    )
    assert "Your role does not allow this." in refused.content.decode()
    admin = signed_in(tenant.user(Role.ADMIN))
    admin.post(url, {"action": "role", "membership": annotator.pk, "role": "reviewer"})
    annotator.refresh_from_db()
    assert annotator.role == Role.REVIEWER
    admin.post(url, {"action": "invite", "role": "annotator"})
    admin.post(url, {"action": "revoke", "invite": Invite.objects.get().pk})
    assert not Invite.objects.exists()


def test_a_manager_turns_self_approval_on_and_off_on_the_settings_page(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.MANAGER))
    url = f"/projects/{tenant.project.pk}/settings/"
    fields = {"action": "settings", "name": "Acme project", "shape_types": ["box"], "tags": "OK"}
    assert 'name="allow_self_approval" >' in client.get(url).content.decode()  # off by default

    client.post(url, fields | {"allow_self_approval": "on"})
    tenant.project.refresh_from_db()
    assert tenant.project.allow_self_approval is True
    assert 'name="allow_self_approval" checked' in client.get(url).content.decode()

    client.post(url, fields)  # an unticked box is not sent at all
    tenant.project.refresh_from_db()
    assert tenant.project.allow_self_approval is False


def test_the_members_page_offers_role_changes_and_invites_to_admins_not_to_managers(
    tenant: Tenant,
) -> None:
    # A manager manages projects, not people: the page lists the members and offers nothing.
    url = f"/o/{tenant.organization.pk}/members/"
    manager_page = signed_in(tenant.user(Role.MANAGER)).get(url).content.decode()
    admin_page = signed_in(tenant.user(Role.ADMIN)).get(url).content.decode()
    for page in (manager_page, admin_page):
        assert tenant.user(Role.ANNOTATOR).email in page
    for form in ('value="role"', 'value="remove"', 'value="invite"'):
        assert form in admin_page
        assert form not in manager_page


def test_new_classes_get_distinct_colours_and_a_new_project_says_it_was_created(
    tenant: Tenant,
) -> None:
    from defectlab.labeling import services
    from defectlab.labeling.models import Project

    client = signed_in(tenant.user(Role.MANAGER))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"
    made = client.post(
        f"/o/{tenant.organization.pk}/projects/new/",
        {"name": "焊缝", "shape_types": ["box"], "classes": "划痕，凹坑、污渍\n划痕"},
        follow=True,
    )
    assert "项目 焊缝 已创建" in made.content.decode()
    project = Project.objects.get(name="焊缝")
    created = list(project.labels.order_by("order").values_list("name", "hotkey"))
    assert created == [("划痕", "1"), ("凹坑", "2"), ("污渍", "3")]  # classes on the form
    services.add_label(project, name="毛刺")  # no colour chosen, as a script would
    colours = list(project.labels.order_by("id").values_list("color", flat=True))
    assert len(set(colours)) == 4
    settings_page = client.get(f"/projects/{project.pk}/settings/").content.decode()
    assert f'name="color" value="{services.free_color(project)}"' in settings_page
    assert services.free_color(project) not in colours
