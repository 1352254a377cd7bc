"""Reading query parameters and keyset cursors, for the API and the pages alike."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import TypeVar
from urllib.parse import SplitResult, urlsplit

from django.db.models import Model, QuerySet
from django.utils.translation import gettext as _

from defectlab.errors import Invalid

M = TypeVar("M", bound=Model)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _sep, value = raw.partition(":")
        if kind != "id":
            raise ValueError
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise Invalid(_("The cursor is not valid; start from the first page.")) from None


def keyset_page(
    rows: QuerySet[M], cursor: str | None, size: int, *, key: str = "id", descending: bool = False
) -> tuple[list[M], str | None]:
    """One page of ``rows`` after ``cursor`` (the ``next_cursor`` of the page before; None for
    the first), ordered by the integer field ``key``, and the cursor of the next page (None on
    the last). Every list that pages answers ``{"results", "next_cursor"}`` through this."""
    after = decode_cursor(cursor)
    if after is not None:
        rows = rows.filter(**{f"{key}__lt" if descending else f"{key}__gt": after})
    page = list(rows.order_by(f"-{key}" if descending else key)[: size + 1])
    more = len(page) > size
    return page[:size], encode_cursor(getattr(page[size - 1], key)) if more else None


def encode_key_cursor(value: str | int, last_id: int) -> str:
    """A cursor for lists in (value, id) order, e.g. by file name."""
    raw = "key:" + json.dumps([value, last_id], ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_key_cursor(cursor: str | None) -> tuple[str | int, int] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _sep, payload = raw.partition(":")
        value, last_id = json.loads(payload) if kind == "key" else (None, None)
        if not isinstance(value, str | int) or not isinstance(last_id, int):
            raise ValueError
        return value, last_id
    except (ValueError, UnicodeDecodeError, TypeError):
        raise Invalid(_("The cursor is not valid; start from the first page.")) from None


def query_bool(params: Mapping[str, str], name: str) -> bool | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise Invalid(_("%(name)s must be true or false.") % {"name": name})


def query_int(params: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
        if not -(2**63) <= value < 2**63:  # no database id is that large; SQLite would overflow
            raise ValueError(raw)
    except ValueError:
        raise Invalid(_("%(name)s must be a whole number.") % {"name": name}) from None
    return value


def split_url(text: str) -> SplitResult:
    """A typed-in address's parts; empty parts when Python cannot parse it (an unclosed ``[``
    such as ``http://[fe80::1/a.png``), so the caller refuses it in its own words."""
    try:
        return urlsplit(text)
    except ValueError:
        return SplitResult("", "", "", "", "")
