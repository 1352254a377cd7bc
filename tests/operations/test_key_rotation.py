"""Rotating DEFECTLAB_SECRET_KEY: the old key in DEFECTLAB_SECRET_KEY_FALLBACKS keeps sessions,
media URLs and stored secrets working; `defectlab rotate-secrets` re-encrypts every stored
secret with the new key so the old one can go."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from django.test import Client
from django.urls import reverse

from defectlab.cli import main
from defectlab.config import key_list
from defectlab.hooks.models import Webhook
from defectlab.hooks.services import create_webhook
from defectlab.inference.models import MLBackend
from defectlab.media import services as media_services
from defectlab.media.models import StorageConnection
from defectlab.media.secrets import SecretError, decrypt_secret, encrypt_secret
from defectlab.serving.keys import create_key
from defectlab.serving.models import OrganizationKey
from defectlab.tenancy.models import Role
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
OLD_KEY = "old-Zr1vTn4LmXe0Pw7sYb2Kc9Hd3Jf6Ga5Uo_RiWtQyNzEx"
NEW_KEY = "new-q8Zr1vTn4LmXe0Pw7sYb2Kc9Hd3Jf6Ga5Uo_RiWtQyNz"


def rotated(settings: Any, *, keep_old: bool) -> None:
    settings.SECRET_KEY = NEW_KEY
    settings.SECRET_KEY_FALLBACKS = [OLD_KEY] if keep_old else []


@pytest.mark.parametrize(
    ("value", "keys"),
    [
        ("", []),
        ("  ", []),
        ("one", ["one"]),
        ("one,two", ["one", "two"]),
        ("one, two ,,three", ["one", "two", "three"]),
        ("one two\tthree\nfour", ["one", "two", "three", "four"]),
    ],
)
def test_fallbacks_are_separated_by_commas_or_whitespace(value: str, keys: list[str]) -> None:
    assert key_list(value) == keys


def test_the_environment_variable_becomes_secret_key_fallbacks(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "defectlab.settings",
        "DEFECTLAB_DATA_DIR": str(tmp_path),
        "DEFECTLAB_SECRET_KEY_FALLBACKS": f"{OLD_KEY}, second-old-key third",
        "PYTHONPATH": str(ROOT / "src"),
    }
    read = "from django.conf import settings; print(settings.SECRET_KEY_FALLBACKS)"
    done = subprocess.run(
        [sys.executable, "-c", read], env=environment, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == repr([OLD_KEY, "second-old-key", "third"])
    environment.pop("DEFECTLAB_SECRET_KEY_FALLBACKS")
    done = subprocess.run(
        [sys.executable, "-c", read], env=environment, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_session_made_with_the_old_key_still_signs_in(settings: Any, tenant: Tenant) -> None:
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    page = reverse("organization", args=[tenant.organization.pk])
    kept, dropped = Client(), Client()
    for client in (kept, dropped):
        client.force_login(tenant.user(Role.ANNOTATOR))
        assert client.get(page).status_code == 200

    rotated(settings, keep_old=False)
    assert dropped.get(page).status_code == 302  # to the sign-in page
    rotated(settings, keep_old=True)
    assert kept.get(page).status_code == 200


def test_a_media_url_signed_with_the_old_key_still_serves(settings: Any, tenant: Tenant) -> None:
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    url = media_services.signed_url(tenant.tasks[0].pk, "image")
    assert Client().get(url).status_code == 200

    rotated(settings, keep_old=False)
    assert Client().get(url).status_code == 404
    rotated(settings, keep_old=True)
    assert Client().get(url).status_code == 200
    # New URLs are signed with the new key: they serve without the fallback.
    fresh = media_services.signed_url(tenant.tasks[0].pk, "thumb")
    rotated(settings, keep_old=False)
    assert Client().get(fresh).status_code == 200


def stored_tokens() -> list[str]:
    return [
        *StorageConnection.objects.values_list("secret_key_encrypted", flat=True),
        *Webhook.objects.values_list("secret", flat=True),
        *MLBackend.objects.exclude(auth="").values_list("auth", flat=True),
        *OrganizationKey.objects.values_list("signing_key", flat=True),
    ]


def with_secrets(tenant: Tenant) -> None:
    owner = tenant.user(Role.OWNER)
    StorageConnection.objects.create(
        organization=tenant.organization,
        project=tenant.project,
        role="source",
        name="line 3",
        bucket="images",
        access_key="AKIA",
        secret_key_encrypted=encrypt_secret("s3-secret-key"),
    )
    create_webhook(
        tenant.organization, owner, url="https://hooks.example.com/in", events=["task.submitted"]
    )
    MLBackend.objects.create(
        organization=tenant.organization,
        name="outside",
        url="https://ml.example.com",
        auth=encrypt_secret("Bearer abc"),
    )
    MLBackend.objects.create(organization=tenant.organization, name="open", url="https://b.test")
    create_key(tenant.organization, owner, "line 3")


def rotate_secrets() -> tuple[int, str]:
    result = CliRunner().invoke(main, ["rotate-secrets"], prog_name="defectlab")
    return result.exit_code, result.output


def test_rotate_secrets_re_encrypts_every_stored_secret_with_the_new_key(
    settings: Any, tenant: Tenant
) -> None:
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    with_secrets(tenant)
    clear = [decrypt_secret(token) for token in stored_tokens()]
    assert len(clear) == 4 and "s3-secret-key" in clear and "Bearer abc" in clear

    rotated(settings, keep_old=False)
    with pytest.raises(SecretError) as refusal:
        decrypt_secret(stored_tokens()[0])
    assert "DEFECTLAB_SECRET_KEY_FALLBACKS" in refusal.value.message
    rotated(settings, keep_old=True)
    assert [decrypt_secret(token) for token in stored_tokens()] == clear  # the fallback reads them

    code, output = rotate_secrets()
    assert code == 0, output
    assert "Encrypted 4 stored secrets again" in output and "Remove" in output
    rotated(settings, keep_old=False)
    assert [decrypt_secret(token) for token in stored_tokens()] == clear  # the new key alone
    code, output = rotate_secrets()  # again: harmless
    assert code == 0 and "Encrypted 4 stored secrets again" in output


def test_secrets_no_key_can_read_are_named_and_left_alone(settings: Any, tenant: Tenant) -> None:
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    with_secrets(tenant)
    lost = Webhook.objects.get().secret
    rotated(settings, keep_old=False)
    settings.SECRET_KEY_FALLBACKS = ["another-" + OLD_KEY]
    code, output = rotate_secrets()
    assert code == 1
    hook = Webhook.objects.get()
    assert f"webhook {hook.pk}" in output and "cannot be decrypted" in output
    assert hook.secret == lost
    assert "Encrypted 0 stored secrets again" in output
