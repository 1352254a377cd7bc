"""Metering: every call to the detection service becomes one `Call` row (organization, key,
model version, images, detections, latency, client address, result) and one log line with the
same fields — never the image, nor its address. Rows are written in bulk by a thread of their
own every second, and when the service stops; a key's ``last_used_at`` is moved at most once a
minute."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db import DataError, IntegrityError, close_old_connections, connections, transaction
from django.utils import timezone

from defectlab.serving.keys import touch
from defectlab.serving.models import Call

log = logging.getLogger("defectlab.serving.calls")

FLUSH_SECONDS = 1.0
MAX_WAITING = 200_000  # calls kept while the database cannot be reached
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Record:
    organization_id: int
    key_id: int | None
    version_id: int | None
    model_name: str
    version_number: int | None
    endpoint: str
    images: int
    detections: int
    latency_ms: float
    client_ip: str | None
    status: int
    code: str
    created_at: datetime


class Meter:
    def __init__(self) -> None:
        self._waiting: list[Record] = []
        self._lock = threading.Lock()
        self._touched: dict[int, datetime] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0

    def add(self, record: Record) -> None:
        with self._lock:
            self._waiting.append(record)
        fields = asdict(record)
        fields["created_at"] = record.created_at.isoformat()
        log.info("detection call", extra=fields)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="meter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is waiting and stop (the meter's thread does both, with its connection)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        else:
            self.flush()

    def _loop(self) -> None:
        try:
            while not self._stop.wait(FLUSH_SECONDS):
                try:
                    self.flush()
                except Exception:  # the database is down: keep the rows, try again
                    log.exception("could not write the calls; trying again")
            try:
                self.flush()
            except Exception:
                log.exception("could not write the last calls before stopping")
        finally:
            connections.close_all()

    def flush(self) -> int:
        """Write the waiting rows. A row the database refuses for itself (its organization
        deleted meanwhile, a value it cannot hold) is logged and dropped, so it cannot hold
        back the others; when the database cannot be reached the rows wait for the next try
        (at most MAX_WAITING of them: the oldest go first, logged)."""
        with self._lock:
            records, self._waiting = self._waiting, []
        if not records:
            return 0
        close_old_connections()
        try:
            Call.objects.bulk_create([Call(**_row(record)) for record in records])
            written = records
        except (DataError, IntegrityError):
            written = self._one_by_one(records)
        except Exception:
            with self._lock:
                self._waiting[:0] = records
                if len(self._waiting) > MAX_WAITING:
                    dropped = len(self._waiting) - MAX_WAITING
                    del self._waiting[:dropped]
                    log.error("dropped %s calls the database could not take in time", dropped)
            raise
        self.written += len(written)
        self._touch(written)
        return len(written)

    def _one_by_one(self, records: list[Record]) -> list[Record]:
        written = []
        for record in records:
            try:
                with transaction.atomic():
                    Call.objects.create(**_row(record))
                written.append(record)
            except (DataError, IntegrityError) as error:
                log.error("a call the database refuses is dropped: %s", error, extra=asdict(record))
        return written

    def _touch(self, records: list[Record]) -> None:
        used: dict[int, datetime] = {}
        for record in records:
            if record.key_id is None:
                continue
            last = self._touched.get(record.key_id)
            if last is None or record.created_at - last > TOUCH_EVERY:
                used[record.key_id] = self._touched[record.key_id] = record.created_at
        if used:
            touch(dict(used))


def _row(record: Record) -> dict[str, object]:
    row = asdict(record)
    row["key_id"] = record.key_id
    return row


def now() -> datetime:
    return timezone.now()


def elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
