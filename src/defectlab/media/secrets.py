"""Storage credentials encrypted at rest.

A secret (an S3 secret key, say) is stored as a Fernet token: AES-128-CBC with an HMAC-SHA256,
so a stored value can be neither read nor altered without the key. The key is derived from
Django's ``SECRET_KEY`` with HKDF under a fixed purpose string, so it differs from every other
use of ``SECRET_KEY`` (sessions, signed media URLs) and nothing extra has to be kept safe.

Rotating ``SECRET_KEY``: put the old one in ``SECRET_KEY_FALLBACKS``; tokens made with it still
decrypt, and `encrypt_secret` always uses the current key, so re-saving re-encrypts;
`rotate_secret` (run over every stored token by `defectlab rotate-secrets`) does it without the
clear text leaving this module."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.utils.translation import gettext as _

from defectlab.errors import DefectLabError

# Changing this string makes every stored credential unreadable: it names the purpose, not a version
# of the code.
_PURPOSE = b"defectlab storage credentials v1"


class SecretError(DefectLabError):
    """A stored credential that cannot be decrypted: the operator has to act, not the user."""

    status = 500
    code = "secret_unreadable"


def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _keys() -> MultiFernet:
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", [])
    return MultiFernet([_fernet(settings.SECRET_KEY), *(_fernet(key) for key in fallbacks)])


def encrypt_secret(text: str) -> str:
    """The stored form of ``text``: ASCII, safe in any text column, different on every call."""
    return _keys().encrypt(text.encode()).decode("ascii")


def rotate_secret(token: str) -> str:
    """``token`` encrypted again with the current key (whichever key, current or fallback, made
    it). Raises `SecretError` when no key can read it."""
    try:
        return _keys().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise SecretError(_unreadable()) from None


def _unreadable() -> str:
    return _(
        "A stored storage credential cannot be decrypted. DEFECTLAB_SECRET_KEY is not the "
        "key it was saved with (or the stored value was changed): put that key in "
        "DEFECTLAB_SECRET_KEY_FALLBACKS, or enter the credential again."
    )


def decrypt_secret(token: str) -> str:
    try:
        return _keys().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise SecretError(_unreadable()) from None
