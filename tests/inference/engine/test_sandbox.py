"""A model's first run, in a child process with memory and time limits: a good model reports
its output shapes; a graph that throws, allocates gigabytes, runs forever or crashes ends with
its code and message, and the test process (the server, in production) is unharmed."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys

import pytest

from defectlab.inference.engine.sandbox import (
    BASELINE_MB,
    MAX_DETAIL,
    SandboxResult,
    run_name,
    validate_in_sandbox,
)
from tests.inference import hostile

# Far above what the small graphs need (about 80 MB resident), far below what the hungry one
# asks for (4 GiB): the limit bites long before this machine notices.
MEMORY_MB = 768
# Generous for a run that takes a tenth of a second, so a busy machine does not time it out.
SECONDS = 60.0


def sandboxed(data: bytes, run: object = None, **limits: object) -> SandboxResult:
    arguments: dict = {"memory_mb": MEMORY_MB, "seconds": SECONDS, **limits}
    if run is not None:
        arguments["run"] = run
    result = validate_in_sandbox(data, **arguments)
    assert "%(" not in result.message
    assert result.seconds > 0
    return result


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_good_model_runs_once_and_reports_its_output_shapes() -> None:
    result = sandboxed(hostile.serialized(hostile.small_detector()))
    assert (result.ok, result.code) == (True, "ok"), result.message
    report = result.report
    assert report["inputs"] == [{"name": "images", "shape": [1, 3, 640, 640]}]
    assert report["outputs"] == [{"name": "output0", "shape": [1, 6, 6400], "dtype": "float32"}]
    assert report["load_seconds"] >= 0 and report["run_seconds"] >= 0
    assert result.peak_rss_bytes is not None
    assert 0 < result.peak_rss_bytes < MEMORY_MB << 20


def test_fixed_input_sizes_are_kept_and_symbolic_ones_follow_the_side_option() -> None:
    fixed = hostile.small_detector(inputs=[hostile.image_input(shape=(1, 3, 320, 256))])
    result = sandboxed(hostile.serialized(fixed))
    assert result.report["outputs"][0]["shape"] == [1, 6, 40 * 32]
    dynamic = hostile.serialized(hostile.small_detector())
    result = sandboxed(dynamic, options={"side": 320})
    assert result.report["inputs"][0]["shape"] == [1, 3, 320, 320]


def test_a_graph_that_throws_is_a_runtime_error_with_onnxruntimes_words() -> None:
    result = sandboxed(hostile.serialized(hostile.throwing()))
    assert result.code == "runtime_error"
    assert result.message.startswith("The model failed on a test image: ")
    assert "indices element out of data bounds" in result.message
    assert len(result.params["detail"]) <= MAX_DETAIL


def test_bytes_that_are_no_model_fail_in_the_child_not_in_the_server() -> None:
    result = sandboxed(b"\x08\x07garbage that is not a graph")
    assert result.code == "runtime_error"
    assert "ONNXRuntimeError" in result.message


def test_a_graph_that_allocates_gigabytes_runs_out_of_memory_in_the_child_only() -> None:
    before = peak_rss_mb()
    result = sandboxed(hostile.serialized(hostile.hungry()))
    assert result.code == "out_of_memory"
    assert result.message == (
        f"The model ran out of memory on a test image: a run may use at most {MEMORY_MB} MB."
    )
    assert result.peak_rss_bytes is not None and result.peak_rss_bytes < MEMORY_MB << 20
    assert peak_rss_mb() - before < 100  # the 4 GiB never came near this process


def test_a_graph_that_allocates_gigabytes_while_it_loads_runs_out_of_memory() -> None:
    result = sandboxed(hostile.serialized(hostile.hungry_when_loaded()))
    assert result.code == "out_of_memory"


def test_a_graph_that_runs_forever_is_killed_at_the_time_limit() -> None:
    result = sandboxed(hostile.serialized(hostile.endless()), seconds=2)
    assert result.code == "timeout"
    assert result.message == "The model did not finish a test image within 2 seconds."
    assert result.seconds >= 2


def test_a_crash_names_the_signal() -> None:
    result = sandboxed(b"", hostile.segfault_run)
    assert result.code == "crashed"
    assert result.message == "The model crashed on a test image (the process got SIGSEGV)."


@pytest.mark.parametrize(
    ("number", "code"),
    [(signal.SIGKILL, "out_of_memory"), (signal.SIGXCPU, "timeout"), (signal.SIGABRT, "crashed")],
    ids=["killed by the OOM killer", "CPU limit", "abort"],
)
def test_a_child_ended_by_the_kernel_is_read_by_its_signal(number: int, code: str) -> None:
    result = sandboxed(b"", hostile.signalled_run, options={"signal_number": int(number)})
    assert result.code == code


def test_a_limit_too_small_for_onnxruntime_itself_is_the_sandboxs_failure() -> None:
    result = sandboxed(hostile.serialized(hostile.small_detector()), memory_mb=64)
    assert result.code == "sandbox_error"
    assert "within 64 MB of memory" in result.message
    assert BASELINE_MB > 64


def test_the_child_starts_clean_with_its_limits_and_without_the_servers_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEFECTLAB_SECRET_KEY", "do-not-leak")
    data = b"\x00" * 300_000  # more than a pipe holds at once
    result = sandboxed(data, hostile.surroundings_run, options={"side": 320, "note": "ü"})
    assert result.ok, result.message
    report = result.report
    assert not report["django_loaded"]
    assert not [name for name in report["environment"] if name.startswith(("DEFECTLAB", "DJANGO"))]
    assert report["address_space"] == MEMORY_MB << 20
    assert report["bytes"] == len(data)
    assert report["options"] == {"side": 320, "note": "ü"}


def test_what_a_run_prints_never_mixes_with_its_answer() -> None:
    result = sandboxed(b"", "tests.inference.hostile:noisy_run")
    assert (result.code, result.report) == ("ok", {"printed": True})


def test_a_report_that_is_not_plain_data_is_the_runs_error() -> None:
    result = sandboxed(b"", hostile.not_plain_data_run)
    assert result.code == "runtime_error"
    assert "not JSON serializable" in result.message


def test_a_run_is_named_by_module_and_function() -> None:
    assert run_name(hostile.segfault_run) == "tests.inference.hostile:segfault_run"
    assert run_name("a.b:c") == "a.b:c"
    for bad in ("tests.inference.hostile", ":run", lambda data: {}):
        with pytest.raises(ValueError):
            run_name(bad)  # type: ignore[arg-type]


def test_limits_must_be_positive() -> None:
    for limits in ({"memory_mb": 0, "seconds": 1.0}, {"memory_mb": 512, "seconds": 0.0}):
        with pytest.raises(ValueError):
            validate_in_sandbox(b"", **limits)  # type: ignore[arg-type]


def test_the_result_is_shown_in_the_language_of_the_request() -> None:
    from django.utils import translation

    result = sandboxed(hostile.serialized(hostile.endless()), seconds=1)
    with translation.override("zh-hans"):
        shown = result.localized(translation.gettext)
    assert shown != result.message and "1" in shown


def test_the_server_side_never_imports_onnxruntime() -> None:
    """Validating a model loads nothing of it into the calling process."""
    script = (
        "import sys, json\n"
        "from defectlab.inference.engine.sandbox import validate_in_sandbox\n"
        "from tests.inference import hostile\n"
        "data = hostile.serialized(hostile.small_detector())\n"
        "result = validate_in_sandbox(data, memory_mb=512, seconds=60)\n"
        "print(json.dumps([result.code, 'onnxruntime' in sys.modules]))\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    finished = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, env=environment, check=True
    )
    assert json.loads(finished.stdout.splitlines()[-1]) == ["ok", False]
