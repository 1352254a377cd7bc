"""Logs are one JSON object a line, with extra fields kept."""

from __future__ import annotations

import json
import logging

import pytest

from defectlab.logs import JsonFormatter, RoleStream


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


def test_server_roles_log_on_stdout_and_other_commands_keep_it_for_what_they_print(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A container's log collector reads the server roles' stdout; a command such as
    `defectlab usage --csv > file` or `tenant-manifests > x.yaml` must not get log lines in it."""
    handler = RoleStream()
    handler.setFormatter(JsonFormatter())
    record = logging.makeLogRecord({"name": "defectlab", "levelname": "INFO", "msg": "hello"})
    try:
        RoleStream.server = False
        handler.handle(record)
        command = capsys.readouterr()
        RoleStream.server = True
        handler.handle(record)
        server = capsys.readouterr()
    finally:
        RoleStream.server = False
    assert command.out == "" and json.loads(command.err)["message"] == "hello"
    assert server.err == "" and json.loads(server.out)["message"] == "hello"


@pytest.mark.parametrize(
    ("command", "server"),
    [("serve", True), ("worker", True), ("serve-inference", True), ("check", False)],
)
def test_each_server_command_sets_itself_up_as_a_server(command: str, server: bool) -> None:
    import inspect

    from defectlab.cli import main

    function = main.get_command(None, command).callback  # type: ignore[arg-type, union-attr]
    source = inspect.getsource(function)
    assert ("_django(server=True)" in source) is server
