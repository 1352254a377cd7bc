"""The pages a person meets when something is refused or broken (404, 403, a stale form, too many
log-ins, 500): the app's look, the person's language, and a way back. Django uses these handlers
only with DEBUG off, which is how pytest-django runs."""

from __future__ import annotations

import re

import pytest
from django.conf import settings as django_settings
from django.test import Client, RequestFactory
from django.utils import translation

from defectlab import api
from defectlab.tenancy.models import Role
from tests.conftest import Tenant
from tests.web.test_pages import PASSWORD, signed_in

ERROR_URLS = "tests.web.error_urls"
WORDS = {
    "en": {
        404: "Page not found",
        403: "Not allowed",
        500: "Something went wrong",
        429: "Too many attempts",
        "csrf": "This page had expired",
        "home": "Go to the start page",
        "back": "Go back",
    },
    "zh-hans": {
        404: "找不到页面",
        403: "不允许访问",
        500: "出错了",
        429: "尝试次数过多",
        "csrf": "此页面已过期",
        "home": "前往首页",
        "back": "返回上一页",
    },
}


def assert_app_page(response, language: str, heading: str, *, home: str = "/") -> str:  # type: ignore[no-untyped-def]
    """The page is the app's (its stylesheet and brand), in ``language``, says ``heading``, and
    offers the start page (or ``home``) and going back."""
    html: str = response.content.decode()
    assert response["Content-Type"].startswith("text/html")
    assert f'<html lang="{language}">' in html
    assert "defectlab/site.css" in html and 'class="brand"' in html
    assert re.search(rf"<h1>\s*{re.escape(heading)}\s*</h1>", html), html
    assert f'href="{home}"' in html
    assert "history.back()" in html
    return html


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_an_address_that_is_not_there_answers_the_apps_404(language: str) -> None:
    response = Client(HTTP_ACCEPT_LANGUAGE=language).get("/no-such-page/")
    assert response.status_code == 404
    html = assert_app_page(response, language, WORDS[language][404])
    assert WORDS[language]["home"] in html and WORDS[language]["back"] in html


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_another_organizations_page_answers_the_404_page_in_the_persons_language(
    tenant: Tenant, other_tenant: Tenant, language: str
) -> None:
    response = signed_in(tenant.user(Role.OWNER), language).get(
        f"/projects/{other_tenant.project.pk}/"
    )
    assert response.status_code == 404
    html = assert_app_page(response, language, WORDS[language][404])
    assert "Acme" in html  # the header still lists the person's own organizations
    assert other_tenant.project.name not in html


@pytest.mark.django_db
@pytest.mark.urls(ERROR_URLS)
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_refused_page_answers_the_apps_403(language: str) -> None:
    response = Client(HTTP_ACCEPT_LANGUAGE=language).get("/broken/refuse/")
    assert response.status_code == 403
    assert_app_page(response, language, WORDS[language][403])


@pytest.mark.django_db
@pytest.mark.urls(ERROR_URLS)
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_crash_answers_the_apps_500(language: str) -> None:
    response = Client(HTTP_ACCEPT_LANGUAGE=language, raise_request_exception=False).get(
        "/broken/crash/"
    )
    assert response.status_code == 500
    html = assert_app_page(response, language, WORDS[language][500])
    assert WORDS[language]["home"] in html


def test_the_500_page_needs_no_database_and_no_request_context() -> None:
    """Whatever broke may be the database or a context processor: the page uses neither (no
    ``django_db`` mark here, so a query would fail the test)."""
    request = RequestFactory().get("/somewhere/")  # no session, no user, no middleware
    with translation.override("zh-hans"):
        response = api.server_error(request)
    assert response.status_code == 500
    assert_app_page(response, "zh-hans", WORDS["zh-hans"][500])


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_too_many_failed_log_ins_answer_the_429_page_with_the_way_back_to_log_in(
    tenant: Tenant, settings, language: str
) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_MAX_FAILURES = 2
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    for _attempt in range(2):
        client.post("/login/", {"email": "owner@acme.test", "password": "wrong"})
    response = client.post("/login/", {"email": "owner@acme.test", "password": PASSWORD})
    assert response.status_code == 429
    html = assert_app_page(response, language, WORDS[language][429], home="/login/")
    assert ("minutes" if language == "en" else "分钟") in html


def stale_login_form(client: Client) -> str:
    """The CSRF token of a log-in page opened now (a tab that stays open)."""
    page = client.get("/login/").content.decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match
    return match.group(1)


def log_in_and_out_elsewhere(client: Client) -> None:
    """Another tab of the same browser logs in (Django renews the CSRF token) and out again."""
    token = stale_login_form(client)
    client.post(
        "/login/", {"email": "owner@acme.test", "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    client.post("/logout/", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_stale_log_in_tab_shows_the_log_in_page_again_with_a_message(
    tenant: Tenant, language: str
) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE=language, enforce_csrf_checks=True)
    stale = stale_login_form(client)
    log_in_and_out_elsewhere(client)
    form = {"email": "owner@acme.test", "password": PASSWORD, "csrfmiddlewaretoken": stale}
    refused = client.post("/login/", form)
    assert refused.status_code == 403
    html = refused.content.decode()
    assert f'<html lang="{language}">' in html
    message = {"en": "This log-in page had expired", "zh-hans": "此登录页面已过期"}[language]
    assert message in html
    assert 'name="password"' in html and 'value="owner@acme.test"' in html
    # The page shown again carries a fresh token: sending it now logs in.
    form["csrfmiddlewaretoken"] = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)[
        -1
    ]
    assert client.post("/login/", form).status_code == 302


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_stale_form_elsewhere_answers_the_expired_page_with_a_way_back(
    tenant: Tenant, language: str
) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE=language, enforce_csrf_checks=True)
    stale = stale_login_form(client)
    log_in_and_out_elsewhere(client)
    refused = client.post("/language/", {"language": "en", "csrfmiddlewaretoken": stale})
    assert refused.status_code == 403
    assert_app_page(refused, language, WORDS[language]["csrf"])


@pytest.mark.django_db
@pytest.mark.urls(ERROR_URLS)
def test_api_errors_stay_in_the_api_error_shape(tenant: Tenant) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans", raise_request_exception=False)
    refused = client.get("/api/broken/refuse/")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert refused.json()["error"]["message"] == "您无权执行此操作。"
    crashed = client.get("/api/broken/crash/")
    assert crashed.status_code == 500
    assert crashed.json() == {"error": {"code": "server_error", "message": "服务器出错了。"}}
    stale = Client(HTTP_ACCEPT_LANGUAGE="zh-hans", enforce_csrf_checks=True)
    stale.force_login(tenant.user(Role.OWNER))
    no_token = stale.post("/api/broken/post/")
    assert no_token.status_code == 403
    assert no_token.json()["error"]["code"] == "csrf_failed"
    assert client.get("/api/no-such-thing/").json()["error"]["code"] == "not_found"


def test_languages_are_offered_under_their_own_names(tenant: Tenant) -> None:
    """A person who cannot read the current language still finds their own in the list."""
    assert dict(django_settings.LANGUAGES) == {"en": "English", "zh-hans": "简体中文"}
    client = signed_in(tenant.user(Role.OWNER), "zh-hans")
    for url in ["/account/", f"/o/{tenant.organization.pk}/"]:
        html = client.get(url).content.decode()
        assert re.search(r'value="en"[^>]*>English</option>', html), url
        assert re.search(r'value="zh-hans"[^>]*>简体中文</option>', html), url
        assert "英语" not in html
    english = Client(HTTP_ACCEPT_LANGUAGE="en").get("/login/").content.decode()
    assert re.search(r'value="zh-hans"[^>]*>简体中文</option>', english)
