"""The interface languages a person may choose are those of settings.LANGUAGES, on the account
page, in the API and in the language switch alike."""

from __future__ import annotations

from typing import Any

import pytest

import defectlab.urls  # noqa: F401  (the API's modules are imported before a test changes settings)
from defectlab.tenancy.models import Role, User
from tests.conftest import Tenant, client_for
from tests.web.test_pages import signed_in

# An operator who adds a language only has to add it to settings.LANGUAGES.
WITH_JAPANESE = [("en", "English"), ("zh-hans", "简体中文"), ("ja", "日本語")]


def test_the_account_page_offers_every_language_of_the_settings(
    tenant: Tenant, settings: Any
) -> None:
    settings.LANGUAGES = WITH_JAPANESE
    html = signed_in(tenant.user(Role.ANNOTATOR)).get("/account/").content.decode()
    select = html.split('<select name="language">', 1)[1].split("</select>", 1)[0]
    for code, name in WITH_JAPANESE:
        assert f'value="{code}"' in select and name in select


@pytest.mark.parametrize("door", ["api", "page"])
def test_a_language_of_the_settings_is_accepted_and_another_is_refused_naming_the_choices(
    tenant: Tenant, settings: Any, door: str
) -> None:
    settings.LANGUAGES = WITH_JAPANESE
    user = tenant.user(Role.ANNOTATOR)

    def choose(language: str) -> str:
        if door == "api":
            answer = client_for(user).patch(
                "/api/account/profile/", {"language": language}, format="json"
            )
            return "" if answer.status_code == 200 else answer.content.decode()
        page = signed_in(user).post(
            "/account/", {"action": "profile", "language": language}, follow=True
        )
        return "" if "Saved." in page.content.decode() else page.content.decode()

    assert choose("ja") == ""
    assert User.objects.get(pk=user.pk).language == "ja"
    refusal = choose("fr")
    assert "en, zh-hans, ja" in refusal
    assert User.objects.get(pk=user.pk).language == "ja"
