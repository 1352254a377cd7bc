"""Signing in, signing up through invites, API tokens, login throttling and security defaults."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

import defectlab.settings as product_settings
from defectlab.tenancy.models import ApiToken, AuditEvent, Invite, Membership, Role, User
from defectlab.tenancy.services import create_invite
from tests.conftest import Tenant, client_for

PASSWORD = "a-long-password-1"


def invite_token(tenant: Tenant, role: str = Role.ANNOTATOR, email: str = "") -> str:
    _invite, token = create_invite(tenant.user(Role.OWNER), tenant.organization, role, email)
    return token


def test_passwords_are_hashed_with_argon2_in_the_product() -> None:
    assert product_settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")


def test_login_sets_a_session_and_logout_ends_it(tenant: Tenant) -> None:
    client = APIClient()
    response = client.post(
        "/api/auth/login/", {"email": "OWNER@acme.test", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["email"] == "owner@acme.test"
    assert client.get("/api/account/").status_code == 200
    assert client.post("/api/auth/logout/").status_code == 204
    assert client.get("/api/account/").status_code in (401, 403)


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(tenant: Tenant) -> None:
    response = APIClient().post(
        "/api/auth/login/", {"email": "owner@acme.test", "password": "nope"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_credentials"
    unknown = APIClient().post(
        "/api/auth/login/", {"email": "ghost@acme.test", "password": "nope"}, format="json"
    )
    assert unknown.json()["error"] == response.json()["error"]


def test_repeated_failed_logins_are_throttled_even_with_the_right_password(
    tenant: Tenant, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_MAX_FAILURES = 3
    client = APIClient()
    for _attempt in range(3):
        client.post(
            "/api/auth/login/", {"email": "owner@acme.test", "password": "wrong"}, format="json"
        )
    blocked = client.post(
        "/api/auth/login/", {"email": "owner@acme.test", "password": PASSWORD}, format="json"
    )
    assert blocked.status_code == 429
    assert "minutes" in blocked.json()["error"]["message"]
    assert AuditEvent.objects.filter(action="login.throttled").exists()


def test_failures_from_one_address_across_many_accounts_are_throttled(
    tenant: Tenant, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_MAX_FAILURES = 2
    client = APIClient()
    for index in range(8):
        client.post(
            "/api/auth/login/", {"email": f"user{index}@acme.test", "password": "x"}, format="json"
        )
    blocked = client.post(
        "/api/auth/login/", {"email": "owner@acme.test", "password": PASSWORD}, format="json"
    )
    assert blocked.status_code == 429


def test_there_is_no_open_sign_up() -> None:
    paths = {"/api/auth/signup/", "/api/auth/register/", "/api/users/"}
    for path in paths:
        response = APIClient().post(path, {"email": "a@b.test", "password": PASSWORD})
        assert response.status_code == 404


def test_invite_link_signs_up_a_new_member_with_the_invited_role(tenant: Tenant) -> None:
    token = invite_token(tenant, Role.REVIEWER)
    client = APIClient()
    preview = client.get(f"/api/invites/preview/{token}/")
    assert preview.status_code == 200
    assert preview.json()["organization"] == "Acme"
    response = client.post(
        "/api/invites/accept/",
        {
            "token": token,
            "email": "New@Acme.test",
            "password": "correct horse battery",
            "name": "Li",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    user = User.objects.get(email="new@acme.test")
    assert Membership.objects.get(user=user).role == Role.REVIEWER
    assert client.get("/api/account/").json()["email"] == "new@acme.test"  # signed in
    again = APIClient().post(
        "/api/invites/accept/",
        {"token": token, "email": "other@acme.test", "password": "correct horse battery"},
        format="json",
    )
    assert again.status_code == 404  # an invite is used once


def test_invite_for_an_address_refuses_another_address(tenant: Tenant) -> None:
    token = invite_token(tenant, email="li@acme.test")
    response = APIClient().post(
        "/api/invites/accept/",
        {"token": token, "email": "mallory@evil.test", "password": "correct horse battery"},
        format="json",
    )
    assert response.status_code == 400
    assert not User.objects.filter(email="mallory@evil.test").exists()


def test_expired_invite_is_refused(tenant: Tenant) -> None:
    token = invite_token(tenant)
    Invite.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    response = APIClient().post(
        "/api/invites/accept/",
        {"token": token, "email": "late@acme.test", "password": "correct horse battery"},
        format="json",
    )
    assert response.status_code == 404
    assert "not valid" in response.json()["error"]["message"]


def test_weak_password_at_sign_up_is_refused_and_creates_nothing(tenant: Tenant) -> None:
    token = invite_token(tenant)
    response = APIClient().post(
        "/api/invites/accept/",
        {"token": token, "email": "w@acme.test", "password": "123"},
        format="json",
    )
    assert response.status_code == 400
    assert not User.objects.filter(email="w@acme.test").exists()
    assert Invite.objects.get().accepted_at is None


def test_signed_in_user_joins_a_second_organization_by_invite(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    token = invite_token(other_tenant, Role.ANNOTATOR)
    client = client_for(tenant.user(Role.MANAGER))
    response = client.post("/api/invites/accept/", {"token": token}, format="json")
    assert response.status_code == 201
    names = {org["name"] for org in client.get("/api/organizations/").json()}
    assert names == {"Acme", "Globex"}


def test_api_token_is_shown_once_stored_hashed_and_authenticates(tenant: Tenant) -> None:
    owner = client_for(tenant.user(Role.OWNER))
    created = owner.post("/api/tokens/", {"name": "ci"}, format="json")
    assert created.status_code == 201
    key = created.json()["key"]
    stored = ApiToken.objects.get()
    assert key not in (stored.key_hash, stored.prefix) and stored.key_hash != ""
    assert "key" not in owner.get("/api/tokens/").json()[0]
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert bearer.get(f"/api/projects/{tenant.project.pk}/").status_code == 200
    owner.delete(f"/api/tokens/{stored.pk}/")
    assert bearer.get(f"/api/projects/{tenant.project.pk}/").status_code == 401


def test_bad_or_expired_api_token_answers_401(tenant: Tenant) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer dl_not-a-real-token")
    assert client.get("/api/projects/").status_code == 401
    owner = client_for(tenant.user(Role.OWNER))
    key = owner.post("/api/tokens/", {"name": "old"}, format="json").json()["key"]
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/projects/").status_code == 401


def test_session_writes_need_a_csrf_token_from_a_trusted_origin(tenant: Tenant) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenant.user(Role.OWNER))
    refused = client.patch(
        f"/api/projects/{tenant.project.pk}/", {"name": "x"}, content_type="application/json"
    )
    assert refused.status_code == 403
    client.get("/api/account/")  # any page sets the csrftoken cookie once used
    from django.middleware.csrf import _get_new_csrf_string, _mask_cipher_secret

    secret = _get_new_csrf_string()
    client.cookies["csrftoken"] = secret
    allowed = client.patch(
        f"/api/projects/{tenant.project.pk}/",
        {"name": "x"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=_mask_cipher_secret(secret),
        HTTP_ORIGIN="http://127.0.0.1:8080",
        HTTP_HOST="127.0.0.1:8080",
    )
    assert allowed.status_code == 200, allowed.content
    foreign = client.patch(
        f"/api/projects/{tenant.project.pk}/",
        {"name": "y"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=_mask_cipher_secret(secret),
        HTTP_ORIGIN="https://evil.example",
        HTTP_HOST="127.0.0.1:8080",
    )
    assert foreign.status_code == 403


@pytest.mark.parametrize("language, expected", [("zh-hans", "邮箱或密码错误"), ("en", "wrong")])
def test_api_errors_follow_the_request_language(
    tenant: Tenant, language: str, expected: str
) -> None:
    response = APIClient().post(
        "/api/auth/login/",
        {"email": "owner@acme.test", "password": "nope"},
        format="json",
        HTTP_ACCEPT_LANGUAGE=language,
    )
    assert expected in response.json()["error"]["message"]


def test_changing_the_password_keeps_the_session_and_checks_the_old_one(tenant: Tenant) -> None:
    client = client_for(tenant.user(Role.ANNOTATOR))
    wrong = client.post(
        "/api/account/password/",
        {"current_password": "nope", "new_password": "another long secret"},
        format="json",
    )
    assert wrong.status_code == 400
    right = client.post(
        "/api/account/password/",
        {"current_password": PASSWORD, "new_password": "another long secret"},
        format="json",
    )
    assert right.status_code == 204
    assert client.get("/api/account/").status_code == 200
    user = User.objects.get(pk=tenant.user(Role.ANNOTATOR).pk)
    assert user.check_password("another long secret")


def test_a_members_chosen_language_wins_over_the_browser(tenant: Tenant) -> None:
    client = client_for(tenant.user(Role.ANNOTATOR))
    assert (
        client.patch("/api/account/profile/", {"language": "zh-hans"}, format="json").status_code
        == 200
    )
    response = client.patch(
        f"/api/projects/{tenant.project.pk}/",
        {"name": "x"},
        format="json",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "您的角色无权执行此操作。"


def test_health_and_readiness_endpoints(db) -> None:  # type: ignore[no-untyped-def]
    from defectlab.jobs.liveness import Heartbeat

    client = APIClient()
    assert client.get("/healthz").json() == {"status": "ok"}
    Heartbeat().beat()  # a job worker is alive (tests/jobs/test_liveness.py: when none is)
    assert client.get("/readyz").json() == {"status": "ok"}


# ---------------------------------------------------------------------------- login CSRF

SIGN_IN = {"email": "owner@acme.test", "password": PASSWORD}


def signed_in_as(client: Client) -> str | None:
    response = client.get("/api/account/")
    return response.json()["email"] if response.status_code == 200 else None


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", urlencode(SIGN_IN)),
        ("text/plain", json.dumps(SIGN_IN)),  # what <form enctype="text/plain"> can forge
        ("multipart/form-data; boundary=BoUnDaRy", None),
    ],
)
def test_a_cross_site_form_post_does_not_sign_anyone_in(
    tenant: Tenant, content_type: str, body: str | None
) -> None:
    """An attacker's page auto-submitting a form to /api/auth/login/ with the attacker's own
    credentials: the visitor's browser must not end up signed in as the attacker."""
    client = Client()
    if body is None:
        response = client.post("/api/auth/login/", SIGN_IN, HTTP_ORIGIN="https://evil.example")
    else:
        response = client.post(
            "/api/auth/login/", body, content_type=content_type, HTTP_ORIGIN="https://evil.example"
        )
    assert response.status_code == 415, response.content
    assert "JSON" in response.json()["error"]["message"]
    assert "sessionid" not in response.cookies
    assert signed_in_as(client) is None
    assert not AuditEvent.objects.filter(action="login").exists()


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_ORIGIN": "https://evil.example"},
        {"HTTP_ORIGIN": "null"},  # sandboxed frames and some redirects
        {"HTTP_ORIGIN": "http://testserver.evil.example"},
        {"HTTP_REFERER": "https://evil.example/page", "secure": True},
    ],
)
def test_a_json_login_from_another_site_is_refused(tenant: Tenant, headers: dict[str, Any]) -> None:
    client = Client()
    response = client.post(
        "/api/auth/login/", json.dumps(SIGN_IN), content_type="application/json", **headers
    )
    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "cross_site"
    assert "another site" in error["message"] and "DEFECTLAB_PUBLIC_URLS" in error["message"]
    assert signed_in_as(client) is None


def test_the_cross_site_refusal_is_in_the_callers_language(tenant: Tenant) -> None:
    response = Client(HTTP_ACCEPT_LANGUAGE="zh-hans").post(
        "/api/auth/login/",
        json.dumps(SIGN_IN),
        content_type="application/json",
        HTTP_ORIGIN="https://evil.example",
    )
    assert response.status_code == 403
    assert "不允许从其他网站登录" in response.json()["error"]["message"]
    form = Client(HTTP_ACCEPT_LANGUAGE="zh-hans").post("/api/auth/login/", SIGN_IN)
    assert form.status_code == 415 and "JSON" in form.json()["error"]["message"]
    assert "请以 JSON" in form.json()["error"]["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl and scripts send no Origin
        {"HTTP_ORIGIN": "http://testserver"},  # the app's own pages
        {"HTTP_ORIGIN": "https://defects.factory.example"},  # listed in DEFECTLAB_PUBLIC_URLS
        {"HTTP_REFERER": "https://testserver/login/", "secure": True},
    ],
)
def test_json_logins_from_scripts_and_this_installation_pass(
    tenant: Tenant, settings: Any, headers: dict[str, Any]
) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://defects.factory.example"]
    client = Client()
    response = client.post(
        "/api/auth/login/", json.dumps(SIGN_IN), content_type="application/json", **headers
    )
    assert response.status_code == 200, response.content
    assert signed_in_as(client) == "owner@acme.test"


def test_an_invite_cannot_be_accepted_by_a_cross_site_form_either(tenant: Tenant) -> None:
    token = invite_token(tenant)
    body = {"token": token, "email": "mallory@evil.example", "password": PASSWORD, "name": "M"}
    client = Client()
    form = client.post("/api/invites/accept/", body, HTTP_ORIGIN="https://evil.example")
    assert form.status_code == 415
    cross_site = client.post(
        "/api/invites/accept/",
        json.dumps(body),
        content_type="application/json",
        HTTP_ORIGIN="https://evil.example",
    )
    assert cross_site.status_code == 403
    assert signed_in_as(client) is None
    assert not User.objects.filter(email="mallory@evil.example").exists()


def test_the_login_page_form_still_signs_in_with_csrf_checks_on(tenant: Tenant) -> None:
    """The browser login page posts its own form (with the CSRF token) to /login/."""
    client = Client(enforce_csrf_checks=True)
    page = client.get("/login/")
    token = client.cookies["csrftoken"].value
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()
    response = client.post(
        "/login/", {**SIGN_IN, "csrfmiddlewaretoken": token}, HTTP_ORIGIN="http://testserver"
    )
    assert response.status_code == 302
    assert signed_in_as(client) == "owner@acme.test"
