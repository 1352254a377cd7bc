"""Structured logging: one JSON object a line on stdout."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Anything passed through `extra=` becomes a field of its own.
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = (
                    value if isinstance(value, str | int | float | bool | None) else str(value)
                )
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RoleStream(logging.StreamHandler):
    """The handler every log line goes through: stdout in the server roles (`serve`, `worker`,
    `serve-inference`: their logs are what a container's log collector reads), stderr in every
    other command, whose stdout may be saved (a CSV, YAML manifests, a backup's report)."""

    server = False  # set by the server commands before Django configures logging

    def __init__(self) -> None:
        # Both bound when logging is configured, as StreamHandler binds its one stream: a
        # sys.stdout swapped later (a test runner's capture) does not receive the process's logs.
        self.streams = (sys.stdout, sys.stderr)
        super().__init__(sys.stderr)

    @property
    def stream(self) -> object:
        return self.streams[0] if RoleStream.server else self.streams[1]

    @stream.setter
    def stream(self, _value: object) -> None:
        pass
