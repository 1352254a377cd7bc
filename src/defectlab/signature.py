"""Signed requests to the detection service: the one statement of the rule, used by the service
(which checks) and by the Python SDK (which signs). Plain Python, nothing else imported.

An organization API key looks like ``dlk_<key id>_<secret>``. Sent as a bearer token it is a
password: whoever reads it off the network can use it. A signed request never sends the key:

- the client derives the key's *signing key*, ``HMAC-SHA256(key, "defectlab request signing")``
  (the service keeps that, encrypted, and only the SHA-256 of the key itself);
- it sends ``X-DefectLab-Content-SHA256: <hex SHA-256 of the body>`` and
  ``Authorization: DefectLab-HMAC-SHA256 key=<key id>, ts=<unix seconds>, nonce=<nonce>,
  signature=<hex>``, the signature being the HMAC-SHA256, under the signing key, of
  `canonical` (method, path with query, timestamp, nonce, body hash; one per line).

The service refuses a request whose timestamp is further than its window from its clock, whose
nonce it has seen inside that window (a replay), whose body does not hash to the header, or whose
signature does not match.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

SCHEME = "DefectLab-HMAC-SHA256"
BODY_HEADER = "X-DefectLab-Content-SHA256"
KEY_PREFIX = "dlk_"
KEY_ID_LENGTH = 10
_KEY = re.compile(r"dlk_([a-z0-9]{10})_([A-Za-z0-9_-]{20,100})")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_PURPOSE = b"defectlab request signing"


class SignatureError(ValueError):
    """A signature header that cannot be read; ``code`` names what is wrong with it."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def split_key(key: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of an organization API key, or None if it is not one."""
    match = _KEY.fullmatch(key.strip())
    return (match.group(1), match.group(2)) if match else None


def signing_key(key: str) -> bytes:
    """The key a signed request is signed with, derived from the API key."""
    return hmac.new(key.strip().encode(), _PURPOSE, hashlib.sha256).digest()


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical(method: str, target: str, timestamp: int, nonce: str, content_sha256: str) -> bytes:
    """What is signed. ``target`` is the path with its query string, as sent (``/v1/detect?…``)."""
    lines = (SCHEME, method.upper(), target, str(timestamp), nonce, content_sha256.lower())
    return "\n".join(lines).encode()


def signature(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(
    key: str,
    method: str,
    target: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that sign one request with the API key ``key``."""
    parts = split_key(key)
    if parts is None:
        raise ValueError("not a DefectLab organization API key (dlk_…)")
    return sign_with(
        parts[0], signing_key(key), method, target, body, timestamp=timestamp, nonce=nonce
    )


def sign_with(
    key_id: str,
    key: bytes,
    method: str,
    target: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that sign one request with a key's id and signing key (`signing_key`): for a
    process that keeps the signing key and not the API key itself."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or secrets.token_urlsafe(18)
    content = body_hash(body)
    mac = signature(key, canonical(method, target, timestamp, nonce, content))
    return {
        "Authorization": f"{SCHEME} key={key_id}, ts={timestamp}, nonce={nonce}, signature={mac}",
        BODY_HEADER: content,
    }


@dataclass(frozen=True, slots=True)
class Signed:
    """The parts of a signed request's ``Authorization`` header."""

    key_id: str
    timestamp: int
    nonce: str
    signature: str

    def matches(self, key: bytes, method: str, target: str, content_sha256: str) -> bool:
        expected = signature(
            key, canonical(method, target, self.timestamp, self.nonce, content_sha256)
        )
        return hmac.compare_digest(expected, self.signature.lower())


def parse(header: str) -> Signed | None:
    """The signed request's parts, None if ``header`` is not of this scheme; SignatureError if it
    is but cannot be read."""
    scheme, _space, rest = header.strip().partition(" ")
    if scheme.lower() != SCHEME.lower():
        return None
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, equals, value = item.strip().partition("=")
        if not equals or name.strip().lower() in fields:
            raise SignatureError("malformed_signature")
        fields[name.strip().lower()] = value.strip()
    if set(fields) != {"key", "ts", "nonce", "signature"}:
        raise SignatureError("malformed_signature")
    if not re.fullmatch(r"[a-z0-9]{10}", fields["key"]):
        raise SignatureError("malformed_signature")
    if not re.fullmatch(r"[0-9]{1,12}", fields["ts"]):
        raise SignatureError("malformed_signature")
    if not _NONCE.fullmatch(fields["nonce"]):
        raise SignatureError("malformed_nonce")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", fields["signature"]):
        raise SignatureError("malformed_signature")
    return Signed(fields["key"], int(fields["ts"]), fields["nonce"], fields["signature"])
