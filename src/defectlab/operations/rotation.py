"""`defectlab rotate-secrets`: every stored secret encrypted again with the current
``DEFECTLAB_SECRET_KEY``, so the old key can leave ``DEFECTLAB_SECRET_KEY_FALLBACKS``.

The secrets are Fernet tokens (`defectlab.media.secrets`): storage connections' S3 secret keys,
webhook secrets, model backends' authorization headers and the detection service's API key
signing keys. Each row is rewritten in its own small update, only its token column; running it
twice is harmless (a token made with the current key is made again with it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import models

from defectlab.hooks.models import Webhook
from defectlab.inference.models import MLBackend
from defectlab.media.models import StorageConnection
from defectlab.media.secrets import SecretError, rotate_secret
from defectlab.serving.models import OrganizationKey

# (model, its token column, what the operator calls it)
STORED: tuple[tuple[type[models.Model], str, str], ...] = (
    (StorageConnection, "secret_key_encrypted", "storage connection"),
    (Webhook, "secret", "webhook"),
    (MLBackend, "auth", "model backend"),
    (OrganizationKey, "signing_key", "API key"),
)


@dataclass
class Rotated:
    rotated: int = 0
    # "storage connection 7": rows no key (current or fallback) can read, left as they were
    unreadable: list[str] = field(default_factory=list)


def rotate_secrets() -> Rotated:
    result = Rotated()
    for model, column, label in STORED:
        rows = model._base_manager.exclude(**{column: ""}).order_by("pk")
        for pk, token in rows.values_list("pk", column).iterator():
            try:
                fresh = rotate_secret(token)
            except SecretError:
                result.unreadable.append(f"{label} {pk}")
                continue
            # Only if unchanged meanwhile: a secret entered again while this ran wins.
            result.rotated += model._base_manager.filter(pk=pk, **{column: token}).update(
                **{column: fresh}
            )
    return result
