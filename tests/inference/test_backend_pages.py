"""The model backends page (/o/{id}/backends/): managers add, edit, check and delete the
organization's ML backends; everyone else of the organization reads; another organization gets
404. A check answers on the page: ok with the model version, or the problem with the rule that
refused the address and where it is lifted.

No live backend is needed for a refusal (the guard refuses loopback and private addresses before
it connects); a successful check talks to the loopback ``Backend`` of test_backends, with
loopback opened by the operator's setting."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from defectlab.inference import backends
from defectlab.inference.models import MLBackend
from defectlab.media.secrets import decrypt_secret
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import AuditEvent, Role
from tests.conftest import Tenant, signed_in
from tests.inference.test_backends import Backend

pytestmark = pytest.mark.django_db

SECRET = "Token s3cret-value"


@pytest.fixture
def server() -> Iterator[Backend]:
    running = Backend()
    yield running
    running.close()


def url(tenant: Tenant) -> str:
    return f"/o/{tenant.organization.pk}/backends/"


def make(tenant: Tenant, address: str = "http://127.0.0.1:9", **fields: Any) -> MLBackend:
    return backends.create_backend(
        tenant.organization, tenant.user(Role.MANAGER), name="SAM", url=address, **fields
    )


def section(html: str, backend: MLBackend) -> str:
    found = re.search(
        rf'<section class="card stack backend" id="backend-{backend.pk}".*?</section>', html, re.S
    )
    assert found, html
    return found.group(0)


def test_a_manager_adds_a_backend_and_its_header_is_never_shown(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.MANAGER))
    page = client.post(
        url(tenant),
        {
            "action": "add",
            "name": "SAM",
            "url": "https://sam.example.com/",
            "auth": SECRET,
            "media_base_url": "http://defectlab.plant.local:8000",
            "note": "line 3",
        },
        follow=True,
    )
    html = page.content.decode()
    assert "The model backend “SAM” was added." in html
    backend = MLBackend.objects.get(organization=tenant.organization)
    assert (backend.name, backend.url, backend.note) == ("SAM", "https://sam.example.com", "line 3")
    assert decrypt_secret(backend.auth) == SECRET
    assert "s3cret" not in html
    shown = section(html, backend)
    assert "https://sam.example.com" in shown and "http://defectlab.plant.local:8000" in shown
    assert "<dd>set</dd>" in shown and "Not checked" in shown and "line 3" in shown
    assert AuditEvent.objects.filter(action=AuditAction.BACKEND_CREATED).exists()


def test_a_refused_form_is_a_message_and_makes_nothing(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.MANAGER))
    page = client.post(
        url(tenant), {"action": "add", "name": "SAM", "url": "ftp://x/"}, follow=True
    )
    assert 'class="message error"' in page.content.decode()
    assert not MLBackend.objects.exists()
    make(tenant)
    page = client.post(
        url(tenant), {"action": "add", "name": "SAM", "url": "https://a.example.com"}, follow=True
    )
    assert "already has a model backend named “SAM”" in page.content.decode()
    assert MLBackend.objects.count() == 1


def test_a_manager_edits_keeps_or_removes_the_header_and_deletes(tenant: Tenant) -> None:
    backend = make(tenant, "https://sam.example.com", auth=SECRET)
    client = signed_in(tenant.user(Role.MANAGER))
    fields = {
        "action": "edit",
        "backend": backend.pk,
        "name": "SAM 2",
        "url": "https://sam.example.com",
        "media_base_url": "",
        "note": "new note",
        "auth": "",
    }
    page = client.post(url(tenant), fields, follow=True)
    assert "The model backend was saved." in page.content.decode()
    backend.refresh_from_db()
    assert (backend.name, backend.note) == ("SAM 2", "new note")
    assert decrypt_secret(backend.auth) == SECRET  # an empty field keeps the header
    html = client.get(url(tenant)).content.decode()
    assert 'name="remove_auth"' in section(html, backend)
    client.post(url(tenant), fields | {"remove_auth": "1"})
    backend.refresh_from_db()
    assert backend.auth == ""
    assert '<dd><span class="muted">not set</span></dd>' in section(
        client.get(url(tenant)).content.decode(), backend
    )
    html = client.get(url(tenant)).content.decode()
    assert 'value="delete" class="danger" data-confirm="Delete the model backend SAM 2?' in html
    page = client.post(url(tenant), {"action": "delete", "backend": backend.pk}, follow=True)
    assert "The model backend “SAM 2” was deleted." in page.content.decode()
    assert not MLBackend.objects.exists()
    assert "No model backends yet." in page.content.decode()


def test_a_check_of_a_loopback_address_shows_the_rule_and_who_can_lift_it(
    tenant: Tenant, settings: Any
) -> None:
    settings.FETCH_ALLOWLIST = []
    backend = make(tenant, "http://127.0.0.1:9")
    client = signed_in(tenant.user(Role.MANAGER))
    page = client.post(url(tenant), {"action": "check", "backend": backend.pk})
    html = page.content.decode()
    assert page.status_code == 200
    result = html[html.index('id="check-result"') :]
    assert 'data-ok="false"' in html and "Check of SAM" in result
    assert "rule: loopback" in result and '<code class="rule">loopback</code>' in result
    assert "DEFECTLAB_FETCH_ALLOWLIST" in result
    assert f'href="/o/{tenant.organization.pk}/network/"' in result
    backend.refresh_from_db()
    assert backend.health == "down" and "rule: loopback" in backend.health_message
    listed = section(client.get(url(tenant)).content.decode(), backend)
    assert 'data-health="down"' in listed and "rule: loopback" in listed


def test_a_check_of_a_private_address_points_to_the_network_access_page(tenant: Tenant) -> None:
    backend = make(tenant, "http://10.0.0.7:9090")
    page = signed_in(tenant.user(Role.MANAGER)).post(
        url(tenant), {"action": "check", "backend": backend.pk}
    )
    result = page.content.decode().split('id="check-result"')[1]
    assert '<code class="rule">private</code>' in result
    assert "An owner or administrator can allow this address on the" in result
    assert f'<a href="/o/{tenant.organization.pk}/network/">network access page</a>' in result


def test_a_check_with_a_project_asks_health_and_setup_and_shows_the_version(
    tenant: Tenant, server: Backend, settings: Any
) -> None:
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]  # the operator opens loopback
    settings.PUBLIC_URLS = ["https://labels.example.com"]
    backend = make(tenant, server.url())
    client = signed_in(tenant.user(Role.MANAGER))
    html = client.get(url(tenant)).content.decode()
    assert f'<option value="{tenant.project.pk}">With Acme project (also /setup)</option>' in html
    assert "https://labels.example.com" in section(html, backend)  # the images' default address
    page = client.post(
        url(tenant), {"action": "check", "backend": backend.pk, "project": tenant.project.pk}
    )
    result = page.content.decode().split('id="check-result"')[1]
    assert "The backend answered /health and /setup." in result
    assert "<code>fake-1.0</code>" in result and "with the project Acme project" in result
    assert [path for path, _headers, _body in server.seen] == ["/health", "/setup"]
    backend.refresh_from_db()
    assert (backend.health, backend.model_version) == ("up", "fake-1.0")
    listed = section(client.get(url(tenant)).content.decode(), backend)
    assert 'data-health="up"' in listed and "<code>fake-1.0</code>" in listed


def test_a_check_against_another_organizations_project_is_refused(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    backend = make(tenant)
    page = signed_in(tenant.user(Role.MANAGER)).post(
        url(tenant),
        {"action": "check", "backend": backend.pk, "project": other_tenant.project.pk},
        follow=True,
    )
    html = page.content.decode()
    assert "No such project in this organization." in html and 'id="check-result"' not in html
    backend.refresh_from_db()
    assert backend.checked_at is None


def test_an_annotator_reads_and_cannot_change(tenant: Tenant) -> None:
    backend = make(tenant, auth=SECRET)
    annotator = signed_in(tenant.user(Role.ANNOTATOR))
    html = annotator.get(url(tenant)).content.decode()
    assert "SAM" in section(html, backend) and "<dd>set</dd>" in html
    assert 'id="add-backend"' not in html and 'value="check"' not in html
    assert 'value="delete"' not in html and 'name="auth"' not in html
    page = annotator.post(url(tenant), {"action": "delete", "backend": backend.pk}, follow=True)
    assert "Your role does not allow this." in page.content.decode()
    annotator.post(url(tenant), {"action": "add", "name": "X", "url": "https://x.example.com"})
    annotator.post(url(tenant), {"action": "check", "backend": backend.pk})
    assert list(MLBackend.objects.values_list("name", "checked_at")) == [("SAM", None)]


def test_another_organization_gets_404_and_its_backend_cannot_be_touched(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    backend = make(tenant)
    stranger = signed_in(other_tenant.user(Role.OWNER))
    assert stranger.get(url(tenant)).status_code == 404
    assert (
        stranger.post(url(tenant), {"action": "delete", "backend": backend.pk}).status_code == 404
    )
    # Through their own page, our backend's ID is not found.
    page = stranger.post(
        url(other_tenant), {"action": "delete", "backend": backend.pk}, follow=True
    )
    assert "Not found." in page.content.decode()
    assert MLBackend.objects.filter(pk=backend.pk).exists()


def test_the_page_in_chinese_and_the_link_from_the_models_page(
    tenant: Tenant, settings: Any
) -> None:
    settings.FETCH_ALLOWLIST = []
    backend = make(tenant, "http://127.0.0.1:9", auth=SECRET)
    client = signed_in(tenant.user(Role.MANAGER), "zh-hans")
    models = client.get(f"/o/{tenant.organization.pk}/models/").content.decode()
    assert f'href="/o/{tenant.organization.pk}/backends/">模型后端</a>' in models
    html = client.get(url(tenant)).content.decode()
    for words in ["模型后端", "添加模型后端", "Authorization 请求头", "已设置", "未检查", "检查"]:
        assert words in html, words
    result = client.post(url(tenant), {"action": "check", "backend": backend.pk}).content.decode()
    assert "拒绝所依据的规则" in result and '<code class="rule">loopback</code>' in result
    assert "网络访问页面</a>中的组织允许列表无法放行此地址" in result
    english = signed_in(tenant.user(Role.OWNER)).get(url(tenant)).content.decode()
    assert "Model backends" in english and "Add a model backend" in english
