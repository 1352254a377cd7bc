"""An organization's use of the detection service, read from its `Call` rows: per UTC day (and
per key or per model version where asked) the calls, images, detections and errors (answers
with a status of 400 or more), over a range of days (the last 30 by default), and the CSV the
operator bills from (one row per day × key × model version).

Each view is one aggregate query (GROUP BY over the day the call was made in UTC), written
with the ORM so it runs the same on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab import signature
from defectlab.api import spreadsheet_safe
from defectlab.errors import Invalid
from defectlab.serving.models import Call

DEFAULT_DAYS = 30
MAX_DAYS = 366
GROUPINGS = ("key", "version")
CSV_COLUMNS = (
    "date",
    "organization_id",
    "key_id",
    "key_name",
    "model",
    "version",
    "calls",
    "images",
    "detections",
    "errors",
)


@dataclass(frozen=True, slots=True)
class Span:
    """The UTC days ``first`` to ``last``, both included."""

    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def dates(self) -> list[date]:
        return [self.first + timedelta(days=offset) for offset in range(self.days)]

    def bounds(self) -> tuple[datetime, datetime]:
        """From the first day's midnight (UTC) to the midnight after the last day."""
        start = datetime.combine(self.first, time.min, tzinfo=UTC)
        return start, start + timedelta(days=self.days)


def today() -> date:
    return timezone.now().astimezone(UTC).date()


def _day(value: Any, name: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise Invalid(
            _("%(name)s must be a date such as 2026-03-01.") % {"name": name},
            code="invalid_date",
            details={"field": name},
        ) from None


def span_of(start: Any = None, end: Any = None, days: Any = None) -> Span:
    """The range asked for: ``start`` and ``end`` (ISO dates, both included), or the last
    ``days`` days up to ``end`` (today, UTC, when not given); the last 30 days by default."""
    last = _day(end, "end") or today()
    first = _day(start, "start")
    if first is None:
        count = DEFAULT_DAYS
        if days not in (None, ""):
            try:
                count = int(days)
            except (TypeError, ValueError):
                count = 0
            if not 1 <= count <= MAX_DAYS:
                raise Invalid(
                    _("days must be a whole number from 1 to %(top)s.") % {"top": MAX_DAYS},
                    code="invalid_range",
                    details={"field": "days"},
                )
        first = last - timedelta(days=count - 1)
    if first > last:
        raise Invalid(
            _("The range starts after it ends."), code="invalid_range", details={"field": "start"}
        )
    if (last - first).days + 1 > MAX_DAYS:
        raise Invalid(
            _("A range of at most %(top)s days, please.") % {"top": MAX_DAYS},
            code="invalid_range",
            details={"field": "start"},
        )
    return Span(first, last)


@dataclass(slots=True)
class Counts:
    calls: int = 0
    images: int = 0
    detections: int = 0
    errors: int = 0

    def add(self, other: Counts) -> None:
        self.calls += other.calls
        self.images += other.images
        self.detections += other.detections
        self.errors += other.errors

    def as_dict(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "images": self.images,
            "detections": self.detections,
            "errors": self.errors,
        }


@dataclass(slots=True)
class Row:
    """One day's counts (for one key and model version, when grouped by them)."""

    date: date
    counts: Counts = field(default_factory=Counts)
    key_id: str | None = None  # the key's public id; None: a call no key was found for
    key_name: str = ""
    model: str = ""
    version: int | None = None

    def as_dict(self, by: Iterable[str] = GROUPINGS) -> dict[str, Any]:
        answer: dict[str, Any] = {"date": self.date.isoformat()}
        if "key" in by:
            answer |= {"key_id": self.key_id, "key_name": self.key_name}
        if "version" in by:
            answer |= {"model": self.model, "version": self.version}
        return answer | self.counts.as_dict()


@dataclass(slots=True)
class Usage:
    span: Span
    by: tuple[str, ...]
    rows: list[Row]
    totals: Counts


def clean_grouping(by: Iterable[str]) -> tuple[str, ...]:
    chosen = {str(name).strip() for name in by if str(name).strip()}
    unknown = sorted(chosen - set(GROUPINGS))
    if unknown:
        raise Invalid(
            _("Group by %(choices)s.") % {"choices": ", ".join(GROUPINGS)},
            code="invalid_grouping",
            details={"by": unknown},
        )
    return tuple(name for name in GROUPINGS if name in chosen)


def _aggregate(organization_id: int, span: Span, by: tuple[str, ...]) -> list[Row]:
    """One GROUP BY query: the day (UTC), then the groupings asked for."""
    start, stop = span.bounds()
    columns = ["day"]
    if "key" in by:
        columns += ["key__key_id", "key__name"]
    if "version" in by:
        columns += ["model_name", "version_number"]
    found = (
        Call.objects.filter(organization_id=organization_id, created_at__gte=start)
        .filter(created_at__lt=stop)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values(*columns)
        .annotate(
            calls=Count("id"),
            images=Coalesce(Sum("images"), 0),
            detections=Coalesce(Sum("detections"), 0),
            errors=Count("id", filter=Q(status__gte=400)),
        )
        .order_by(*columns)
    )
    return [
        Row(
            date=_as_date(entry["day"]),
            counts=Counts(entry["calls"], entry["images"], entry["detections"], entry["errors"]),
            key_id=entry.get("key__key_id"),
            key_name=entry.get("key__name") or "",
            model=entry.get("model_name") or "",
            version=entry.get("version_number"),
        )
        for entry in found
    ]


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def usage_of(organization_id: int, span: Span, by: Iterable[str] = ()) -> Usage:
    """The organization's counts over ``span``, per day (every day of it, quiet ones at zero)
    or, grouped ``by`` key and/or model version, per day and group (days with calls only)."""
    grouping = clean_grouping(by)
    rows = _aggregate(organization_id, span, grouping)
    totals = Counts()
    for row in rows:
        totals.add(row.counts)
    if not grouping:
        found = {row.date: row for row in rows}
        rows = [found.get(day) or Row(date=day) for day in span.dates()]
    return Usage(span, grouping, rows, totals)


def public_key_id(key_id: str | None) -> str:
    """How a key is named on a bill: the public start of its text, ``dlk_<key id>``."""
    return f"{signature.KEY_PREFIX}{key_id}" if key_id else ""


def billing_rows(organization_id: int, span: Span) -> list[dict[str, Any]]:
    """One row per day × key × model version with calls, in `CSV_COLUMNS` order."""
    return [
        {
            "date": row.date.isoformat(),
            "organization_id": organization_id,
            "key_id": public_key_id(row.key_id),
            "key_name": row.key_name,
            "model": row.model,
            "version": "" if row.version is None else row.version,
            **row.counts.as_dict(),
        }
        for row in _aggregate(organization_id, span, GROUPINGS)
    ]


def billing_csv(organization_id: int, span: Span) -> str:
    """The billing rows as CSV text (a header line, then one line per row)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in billing_rows(organization_id, span):
        writer.writerow({name: spreadsheet_safe(value) for name, value in row.items()})
    return out.getvalue()


def csv_file_name(organization_id: int, span: Span) -> str:
    return f"usage-{organization_id}-{span.first.isoformat()}-{span.last.isoformat()}.csv"
