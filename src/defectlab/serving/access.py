"""Who is calling: an organization API key sent as a bearer token, or a signed request
(`defectlab.signature`). Keys are kept in memory for DEFECTLAB_INFERENCE_REFRESH_SECONDS, so a
revoked key is refused by every replica within that time without a database read per call."""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from django.utils.translation import gettext as _

from defectlab import signature
from defectlab.errors import Forbidden, Unauthorized
from defectlab.serving.keys import KeyInfo, active_key


@dataclass(frozen=True, slots=True)
class Caller:
    key: KeyInfo
    signed: bool
    body_sha256: str | None  # the hash a signed request declared, checked once the body is read

    @property
    def organization_id(self) -> int:
        return self.key.organization_id


class KeyCache:
    """Keys by public id, each (or its absence) kept for ``seconds``."""

    def __init__(self, seconds: float, run: Callable[..., Awaitable[KeyInfo | None]]) -> None:
        self.seconds = seconds
        self._run = run  # runs a blocking function off the event loop
        self._kept: dict[str, tuple[KeyInfo | None, float]] = {}

    async def get(self, key_id: str) -> KeyInfo | None:
        now = time.monotonic()
        kept = self._kept.get(key_id)
        if kept is not None and kept[1] > now:
            return kept[0]
        info = await self._run(active_key, key_id)
        if len(self._kept) > 100_000:  # a flood of made-up ids: forget the oldest half
            for old in list(itertools.islice(self._kept, 50_000)):
                del self._kept[old]
        self._kept[key_id] = (info, now + self.seconds)
        return info


def _refused(code: str) -> Unauthorized:
    messages = {
        "missing_key": _(
            "Send an organization API key: “Authorization: Bearer dlk_…”, or sign the request."
        ),
        "invalid_key": _("This API key is not valid (wrong, or revoked)."),
        "signature_required": _("This API key only accepts signed requests."),
        "malformed_signature": _("The request's signature header cannot be read."),
        "malformed_nonce": _("The signature's nonce must be 16 to 64 letters, digits, - or _."),
        "stale_timestamp": _(
            "The signature's timestamp is too far from the service's clock: check the client's clock."
        ),
        "missing_body_hash": _(
            "A signed request must send the SHA-256 of its body in X-DefectLab-Content-SHA256."
        ),
        "bad_signature": _("The request's signature does not match."),
        "replayed_nonce": _("This signed request was already received (its nonce was used)."),
        "body_hash_mismatch": _("The body does not match its X-DefectLab-Content-SHA256."),
    }
    return Unauthorized(messages[code], code=code)


async def authenticate(
    headers: Mapping[str, str],
    method: str,
    target: str,
    keys: KeyCache,
    first_use: Callable[[str, str, int], Awaitable[bool]],
    window: int,
    scope: str,
) -> Caller:
    """The caller of a request, from its headers alone (a signed request's body is checked
    against its declared hash by `check_body` once read). Unauthorized (401) or Forbidden
    (403: the key lacks ``scope``)."""
    header = headers.get("authorization", "").strip()
    if not header:
        raise _refused("missing_key")
    try:
        signed = signature.parse(header)
    except signature.SignatureError as error:
        raise _refused(error.code) from None
    if signed is None:
        caller = await _bearer(header, keys)
    else:
        caller = await _signed(signed, headers, method, target, keys, first_use, window)
    if scope not in caller.key.scopes:
        raise Forbidden(
            _("This API key may not do this (it lacks the “%(scope)s” scope).") % {"scope": scope},
            code="scope",
        )
    return caller


async def _bearer(header: str, keys: KeyCache) -> Caller:
    scheme, _space, token = header.partition(" ")
    parts = signature.split_key(token) if scheme.lower() == "bearer" else None
    if parts is None:
        raise _refused("invalid_key")
    info = await keys.get(parts[0])
    if info is None or not info.matches(token.strip()):
        raise _refused("invalid_key")
    if info.signed_only:
        raise _refused("signature_required")
    return Caller(info, signed=False, body_sha256=None)


async def _signed(
    signed: signature.Signed,
    headers: Mapping[str, str],
    method: str,
    target: str,
    keys: KeyCache,
    first_use: Callable[[str, str, int], Awaitable[bool]],
    window: int,
) -> Caller:
    info = await keys.get(signed.key_id)
    if info is None:
        raise _refused("invalid_key")
    if abs(time.time() - signed.timestamp) > window:
        raise _refused("stale_timestamp")
    declared = headers.get(signature.BODY_HEADER.lower(), "").strip().lower()
    if len(declared) != 64 or any(c not in "0123456789abcdef" for c in declared):
        raise _refused("missing_body_hash")
    if not signed.matches(info.signing_key, method, target, declared):
        raise _refused("bad_signature")
    if not await first_use(signed.key_id, signed.nonce, 2 * window):
        raise _refused("replayed_nonce")
    return Caller(info, signed=True, body_sha256=declared)


def check_body(caller: Caller, body: bytes) -> None:
    if caller.body_sha256 is not None and signature.body_hash(body) != caller.body_sha256:
        raise _refused("body_hash_mismatch")
