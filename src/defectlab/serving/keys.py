"""Organization API keys for the detection service: made (shown once), listed, revoked, and
found again from what a caller sends (`KeyInfo`, what the service keeps in memory)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab import signature
from defectlab.errors import Invalid
from defectlab.media.secrets import decrypt_secret, encrypt_secret
from defectlab.serving.models import OrganizationKey, Scope
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import Organization, User
from defectlab.tenancy.services import record

_ID_ALPHABET = string.ascii_lowercase + string.digits


def digest(key: str) -> str:
    return hashlib.sha256(key.strip().encode()).hexdigest()


def clean_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = sorted({str(scope).strip() for scope in scopes})
    unknown = [scope for scope in chosen if scope not in Scope.values]
    if unknown or not chosen:
        raise Invalid(
            _("Choose the key's scopes among: %(scopes)s.") % {"scopes": ", ".join(Scope.values)},
            code="invalid_scopes",
            details={"scopes": unknown},
        )
    return chosen


def create_key(
    organization: Organization,
    actor: User | None,
    name: str,
    scopes: Iterable[str] = (Scope.DETECT,),
    *,
    signed_only: bool = False,
) -> tuple[OrganizationKey, str]:
    """A new key and its secret text (``dlk_…``), which is never shown again."""
    name = name.strip()
    if not name or len(name) > 100:
        raise Invalid(_("Give the key a name of at most 100 characters."), code="invalid_name")
    chosen = clean_scopes(scopes)
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(signature.KEY_ID_LENGTH))
    text = f"{signature.KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = OrganizationKey.objects.create(
            organization=organization,
            name=name,
            key_id=key_id,
            secret_hash=digest(text),
            signing_key=encrypt_secret(signature.signing_key(text).hex()),
            scopes=chosen,
            signed_only=signed_only,
            created_by=actor,
        )
        record(
            None,
            AuditAction.SERVICE_KEY_CREATED,
            organization=organization,
            target=key,
            actor=actor,
            data={"name": name, "key_id": key_id, "scopes": chosen, "signed_only": signed_only},
        )
    return key, text


def revoke_key(key: OrganizationKey, actor: User | None) -> OrganizationKey:
    """Revoke ``key`` (again is a no-op): every replica refuses it within
    DEFECTLAB_INFERENCE_REFRESH_SECONDS."""
    with transaction.atomic():
        locked = OrganizationKey.objects.select_for_update().get(pk=key.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.revoked_by = actor
            locked.save(update_fields=["revoked_at", "revoked_by"])
            record(
                None,
                AuditAction.SERVICE_KEY_REVOKED,
                organization=locked.organization_id,
                target=locked,
                actor=actor,
                data={"name": locked.name, "key_id": locked.key_id},
            )
    return locked


def keys_of(organization: Organization) -> QuerySet[OrganizationKey]:
    return OrganizationKey.objects.filter(organization=organization).order_by("-id")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the service needs of a key to admit a call."""

    pk: int
    key_id: str
    organization_id: int
    scopes: frozenset[str]
    signed_only: bool
    secret_hash: str
    signing_key: bytes

    def matches(self, text: str) -> bool:
        return hmac.compare_digest(self.secret_hash, digest(text))


def active_key(key_id: str) -> KeyInfo | None:
    """The key with this public id, unless there is none or it is revoked."""
    row = (
        OrganizationKey.objects.filter(key_id=key_id, revoked_at__isnull=True)
        .only("key_id", "organization_id", "scopes", "signed_only", "secret_hash", "signing_key")
        .first()
    )
    if row is None:
        return None
    return KeyInfo(
        pk=row.pk,
        key_id=row.key_id,
        organization_id=row.organization_id,
        scopes=frozenset(row.scopes),
        signed_only=row.signed_only,
        secret_hash=row.secret_hash,
        signing_key=bytes.fromhex(decrypt_secret(row.signing_key)),
    )


def touch(used: dict[int, object]) -> None:
    """Set ``last_used_at`` of the keys in ``used`` (pk → time)."""
    for pk, when in used.items():
        OrganizationKey.objects.filter(pk=pk).update(last_used_at=when)
