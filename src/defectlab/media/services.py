"""Signed, short-lived media URLs and the image variants browsers get (display copy, thumbnail)."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

from django.conf import settings
from django.core import signing
from django.urls import get_script_prefix, reverse

from defectlab.images import render_for_display, thumbnail
from defectlab.ingest.services import fetch_referenced
from defectlab.media.storage import Storage, default_storage

Variant = Literal["image", "thumb"]
_SALT = "defectlab.media"


def signed_url(task_id: int, variant: Variant) -> str:
    """A URL anyone holding it can open until it expires; minted only for members.

    DEFECTLAB_MEDIA_URL_TTL is a maximum: the expiry is rounded *down* to a half-TTL step, so
    the same image keeps the same URL for a while (the browser's cache works) and a link lives
    between half the TTL and the TTL, never longer."""
    ttl = settings.MEDIA_URL_TTL
    step = max(1, ttl // 2)
    expires = math.floor((time.time() + ttl) / step) * step
    token = signing.Signer(salt=_SALT).sign_object([task_id, variant, expires])
    before, after = _media_path(get_script_prefix())
    return f"{before}{token}{after}"


@functools.lru_cache(maxsize=16)
def _media_path(script_prefix: str) -> tuple[str, str]:
    """The media route around its token, reversed once per script prefix: a task page signs two
    URLs a task, and reversing each took half of the page's serialization."""
    before, _token, after = reverse("media", kwargs={"token": "TOKEN"}).partition("TOKEN")
    return before, after


@dataclass(frozen=True, slots=True)
class MediaGrant:
    task_id: int
    variant: Variant
    expires: int


def read_grant(token: str) -> MediaGrant | None:
    try:
        task_id, variant, expires = signing.Signer(salt=_SALT).unsign_object(token)
        grant = MediaGrant(int(task_id), variant, int(expires))
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if grant.expires < time.time() or grant.variant not in ("image", "thumb"):
        return None
    return grant


def cached_copies(image_key: str) -> tuple[str, str]:
    """The keys of the thumbnail and display copy `variant_bytes` may cache for an image."""
    return f"cache/thumbs/{image_key}.jpg", f"cache/display/{image_key}.png"


def reference_thumbnails(task_id: int) -> tuple[str, str]:
    """Where the thumbnail of a task kept by reference is cached: (from a URL, from a storage
    connection)."""
    return f"cache/remote/{task_id}.jpg", f"cache/storage/{task_id}.jpg"


def cached_thumbnail(
    cache_key: str, original: Callable[[], bytes], storage: Storage | None = None
) -> bytes:
    """The thumbnail cached under ``cache_key``; made from ``original()`` and cached on first
    use. (The one place that decides "cached, else make it", for every kind of task image.)"""
    storage = storage or default_storage()
    if storage.exists(cache_key):
        return storage.read(cache_key)
    data = thumbnail(original())
    storage.save(cache_key, data)
    return data


def variant_bytes(
    image_key: str, variant: Variant, storage: Storage | None = None
) -> tuple[bytes, str]:
    """The bytes and content type to send for one variant of a stored image, cached in storage."""
    storage = storage or default_storage()
    if variant == "thumb":
        read = partial(storage.read, image_key)
        return cached_thumbnail(cached_copies(image_key)[0], read, storage), "image/jpeg"
    cache_key = cached_copies(image_key)[1]
    if storage.exists(cache_key):
        return storage.read(cache_key), "image/png"
    original = storage.read(image_key)
    display, content_type = render_for_display(original)
    if display is not original and display != original:
        storage.save(cache_key, display)
    return display, content_type


def remote_variant(
    task_id: int,
    organization_id: int,
    url: str,
    variant: Variant,
    seen: Callable[[bytes], None] | None = None,
) -> tuple[bytes, str]:
    """A variant of an image kept by reference: fetched through the guarded fetcher under the
    organization's allowlist each time (that is what "by reference" means), except thumbnails,
    which are cached like those of stored images. Refusals and failures raise the fetcher's
    errors, which name the rule. ``seen`` is given the original bytes when they were fetched
    (to learn the image's size)."""

    def original() -> bytes:
        data = fetch_referenced(organization_id, url)
        if seen is not None:
            seen(data)
        return data

    if variant == "thumb":
        return cached_thumbnail(reference_thumbnails(task_id)[0], original), "image/jpeg"
    return render_for_display(original())
