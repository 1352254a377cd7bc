"""Logs are one JSON object a line, with extra fields kept."""

from __future__ import annotations

import json
import logging

from defectlab.logs import JsonFormatter


def test_a_log_record_becomes_one_json_line_with_its_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "defectlab.jobs", "levelname": "WARNING", "msg": "job %s failed", "args": (7,)}
    )
    record.job_id = 7
    record.detail = {"not": "a scalar"}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "job 7 failed"
    assert entry["level"] == "warning" and entry["logger"] == "defectlab.jobs"
    assert entry["job_id"] == 7 and entry["detail"] == "{'not': 'a scalar'}"


def test_exceptions_are_kept_in_the_same_line() -> None:
    try:
        raise ValueError("broken image")
    except ValueError:
        import sys

        record = logging.makeLogRecord({"msg": "upload refused", "exc_info": sys.exc_info()})
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: broken image" in entry["error"]
