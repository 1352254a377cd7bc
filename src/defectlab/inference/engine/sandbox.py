"""A model's first run, in a separate process with memory and time limits, before a version
becomes usable: a graph that throws, allocates gigabytes or runs forever fails there, and the
server that asked goes on unharmed (it never imports onnxruntime or the model on this path).

The child is a fresh interpreter (``python -c``), not a fork: it inherits neither Django's state
nor the server's environment (no ``DEFECTLAB_*`` secrets; only the import path and thread
settings are passed). Its first statements set its limits, before onnxruntime loads:

- ``RLIMIT_AS`` (address space) at ``memory_mb``: an allocation past it fails inside the child
  (``MemoryError``, or onnxruntime's "Failed to allocate"), and the machine never gives the
  model that memory. The budget is the whole process's: Python, numpy and onnxruntime take
  about 150 MB of address space before the model is read (``BASELINE_MB`` leaves room for a
  tiny model's run), the model's bytes are held about twice while its session is built, then
  come its tensors: a 16 MB model of 4 million weights runs at 640 within 256 MB; 1024 MB
  leaves a YOLO model of a few tens of MB ample room. Address space is not memory used:
  every thread that allocates reserves a glibc malloc arena of 64 MB, so an onnxruntime
  session with 16 threads takes 1.2 GB of address space for 77 MB resident. The child
  therefore runs onnxruntime with one thread and ``MALLOC_ARENA_MAX=1`` (16 threads: 290 MB),
  and without onnxruntime's own arena (which grows by powers of two), so the limit measures
  what the graph allocates.
- ``RLIMIT_CPU`` a second above ``seconds``: a backstop if the parent dies; the parent itself
  ends the child with SIGKILL when ``seconds`` of wall-clock time have passed.
- no core files (a crash of a big process would write one as big).

The model's bytes go to the child on its standard input; on its standard output (which it
moves away from anything the libraries print) it says ``RUNNING`` once it is set up, then
answers with one JSON document. Outcomes, each
with a stable ``code`` and a message: ``ok`` (with the run's report: the output shapes and
times), ``runtime_error``, ``out_of_memory``, ``timeout``, ``crashed`` (a signal, named), and
``sandbox_error`` when the child could not even start (onnxruntime missing, or a limit too
small to import it): then the model was never tried.

What runs is a function ``run(data: bytes, **options) -> dict`` given by its importable name
(``"package.module:function"``) or the function itself (defined at the top level of a module);
it returns plain data (JSON). The default, ``run_once``, builds a CPU session and runs it once
on a random tensor; the registry can pass one that builds the engine's detector and detects on
a synthetic panel. Linux (``resource`` limits, ``/proc``).
"""

from __future__ import annotations

import json
import math
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import import_module
from typing import Any

from defectlab.inference.engine.errors import gettext_noop, localize

DEFAULT_RUN = "defectlab.inference.engine.sandbox:run_once"
# Address space of the child with a tiny model at 640 (Python, numpy, onnxruntime: about 150 MB
# before the model is read, 170 MB at its peak; x86-64 Linux, onnxruntime 1.32). A limit below
# it fails every model.
BASELINE_MB = 200
DEFAULT_SIDE = 640  # symbolic height and width of the test input (the batch is 1)
MAX_REPORT = 1 << 20  # bytes of JSON a run may send back
RUNNING = b"running\n"  # what the child says once it is set up and starts the run
STDERR_TAIL = 8192  # bytes of the child's error output kept to explain a crash
MAX_DETAIL = 500  # characters of an error message kept in the outcome
_CHUNK = 1 << 16
# How onnxruntime, the C++ runtime, glibc and Python say that memory ran out.
_MEMORY_WORDS = (
    "bad_alloc",
    "memory allocation",
    "failed to allocate",
    "out of memory",
    "cannot allocate memory",
    "memoryerror",
    "failed to map segment",
)

# The child's first statements: limits, then the runner (see the module's docstring).
BOOTSTRAP = """\
import resource, sys
memory, cpu = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
from defectlab.inference.engine.sandbox import child_main
child_main(sys.argv[3], sys.argv[4])
"""

RunFunction = Callable[..., Mapping[str, Any]]


@dataclass(frozen=True)
class SandboxResult:
    """How the model's run in the sandbox ended. ``report`` is what the run returned (empty
    unless ``ok``); ``seconds`` is the child's whole wall-clock time, start-up included;
    ``peak_rss_bytes`` the child's peak resident memory where it could be read."""

    code: str
    template: str
    params: Mapping[str, Any] = field(default_factory=dict)
    report: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    peak_rss_bytes: int | None = None

    @property
    def ok(self) -> bool:
        return self.code == "ok"

    @property
    def message(self) -> str:
        return self.template % self.params if self.params else self.template

    def localized(self, translate: Callable[[str], str]) -> str:
        return localize(self.template, self.params, translate)


def validate_in_sandbox(
    data: bytes,
    run: str | RunFunction = DEFAULT_RUN,
    *,
    memory_mb: int,
    seconds: float,
    options: Mapping[str, Any] | None = None,
) -> SandboxResult:
    """``run(data, **options)`` in a child process limited to ``memory_mb`` of address space
    and ``seconds`` of wall-clock time. ``options`` must be JSON."""
    if memory_mb <= 0 or not seconds > 0:
        raise ValueError(f"limits must be positive, not {memory_mb} MB and {seconds} s")
    command = [
        sys.executable,
        "-P",  # nothing imported from the working directory
        "-c",
        BOOTSTRAP,
        str(memory_mb << 20),
        str(math.ceil(seconds) + 1),
        run_name(run),
        json.dumps(dict(options or {})),
    ]
    started = time.monotonic()
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_environment(),
        cwd="/",
        close_fds=True,
    ) as child:
        try:
            exchange = _exchange(child, data, deadline=started + seconds)
        except BaseException:  # interrupted: the child must not outlive the request
            if child.returncode is None:
                os.kill(child.pid, signal.SIGKILL)
            raise
    result = _result(exchange, memory_mb=memory_mb, seconds=seconds)
    return replace(
        result,
        seconds=time.monotonic() - started,
        peak_rss_bytes=result.peak_rss_bytes or exchange.peak_rss_bytes,
    )


def run_name(run: str | RunFunction) -> str:
    """``"module:function"`` for a run given by name or as a top-level function."""
    if isinstance(run, str):
        module, _, function = run.partition(":")
        if not module or not function:
            raise ValueError(f"a run is named 'package.module:function', not {run!r}")
        return run
    owner = getattr(run, "__module__", None)
    qualname = getattr(run, "__qualname__", "")
    if not isinstance(owner, str) or owner == "__main__" or "<" in qualname:
        raise ValueError(f"{run!r} is not a top-level function of an importable module")
    return f"{owner}:{qualname}"


def child_environment() -> dict[str, str]:
    """The child's whole environment: where to import from, and one thread everywhere."""
    kept = {name: os.environ[name] for name in ("LD_LIBRARY_PATH",) if name in os.environ}
    return kept | {
        "PATH": os.defpath,
        "PYTHONPATH": os.pathsep.join(os.path.abspath(path) for path in sys.path if path),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "1",
    }


# ---------------------------------------------------------------------------- the parent


@dataclass
class _Exchange:
    report: bytes
    stderr: bytes
    returncode: int
    timed_out: bool
    peak_rss_bytes: int | None


def _exchange(child: subprocess.Popen[bytes], data: bytes, *, deadline: float) -> _Exchange:
    """Feed ``data``, collect the answer and the tail of the error output, and reap the child
    (SIGKILL once ``deadline`` passes). The pipes are served together, so neither side blocks
    the other however much either writes."""
    assert child.stdin and child.stdout and child.stderr
    report, errors = bytearray(), bytearray()
    sent, view = 0, memoryview(data)
    os.set_blocking(child.stdin.fileno(), False)
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdin, selectors.EVENT_WRITE)
        selector.register(child.stdout, selectors.EVENT_READ)
        selector.register(child.stderr, selectors.EVENT_READ)
        while selector.get_map() and (remaining := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(remaining):
                if key.fileobj is child.stdin:
                    try:
                        sent += os.write(key.fd, view[sent : sent + _CHUNK])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # the child is gone; its status will say why
                        sent = len(data)
                    if sent >= len(data):
                        selector.unregister(child.stdin)
                        child.stdin.close()
                    continue
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                elif key.fileobj is child.stdout:
                    report += chunk[: max(0, MAX_REPORT + 1 - len(report))]
                else:
                    errors = (errors + chunk)[-STDERR_TAIL:]
        timed_out = bool(selector.get_map())
    peak = _peak_rss(child.pid) if timed_out else None
    returncode, timed_out = _reap(child, deadline, kill=timed_out)
    return _Exchange(bytes(report), bytes(errors), returncode, timed_out, peak)


def _reap(child: subprocess.Popen[bytes], deadline: float, *, kill: bool) -> tuple[int, bool]:
    """The child's exit status once it is gone, and whether it had to be killed. Signals go
    by pid and the status is read with ``waitpid`` here, not through ``Popen.poll``, which
    would reap the child unseen."""
    while True:
        if kill:
            os.kill(child.pid, signal.SIGKILL)
        pid, status = os.waitpid(child.pid, 0 if kill else os.WNOHANG)
        if pid:
            break
        if time.monotonic() >= deadline:
            kill = True
            continue
        time.sleep(0.005)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, kill


def _peak_rss(pid: int) -> int | None:
    """The peak resident memory of a live process (``VmHWM``), in bytes."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


_TIMEOUT = gettext_noop("The model did not finish a test image within %(seconds)s seconds.")
_NOT_STARTED = gettext_noop(
    "The validation could not start (within %(limit)s MB of memory): %(detail)s"
)
_SLOW_START = gettext_noop("The validation could not start within %(seconds)s seconds.")


def _result(exchange: _Exchange, *, memory_mb: int, seconds: float) -> SandboxResult:
    """The outcome, from the child's answer where it gave one, else from how it ended. Until
    the child says ``RUNNING`` the model was not tried: any failure then is the sandbox's."""
    running = exchange.report.startswith(RUNNING)
    if exchange.timed_out:
        code, template = ("timeout", _TIMEOUT) if running else ("sandbox_error", _SLOW_START)
        return SandboxResult(code, template, {"seconds": _number(seconds)})
    answer = None
    if exchange.returncode == 0:
        answer = _answer(exchange.report.removeprefix(RUNNING))
    if answer is None:
        if not running:
            return SandboxResult(
                "sandbox_error", _NOT_STARTED, {"limit": memory_mb, "detail": _last_words(exchange)}
            )
        return _died(exchange, memory_mb=memory_mb, seconds=seconds)
    if not running:
        detail = str(answer.get("detail", ""))
        return SandboxResult("sandbox_error", _NOT_STARTED, {"limit": memory_mb, "detail": detail})
    peak = answer.get("peak_rss_bytes")
    result = _answered(answer, memory_mb=memory_mb)
    return replace(result, peak_rss_bytes=peak if isinstance(peak, int) else None)


def _answer(report: bytes) -> dict[str, Any] | None:
    if len(report) > MAX_REPORT:
        return None
    try:
        answer = json.loads(report)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) and "outcome" in answer else None


def _answered(answer: dict[str, Any], *, memory_mb: int) -> SandboxResult:
    outcome = answer["outcome"]
    if outcome == "ok" and isinstance(answer.get("report"), dict):
        return SandboxResult(
            "ok", gettext_noop("The model ran on a test image."), report=answer["report"]
        )
    if outcome == "memory":
        return _out_of_memory(memory_mb)
    return SandboxResult(
        "runtime_error",
        gettext_noop("The model failed on a test image: %(detail)s"),
        {"detail": str(answer.get("detail", ""))},
    )


def _died(exchange: _Exchange, *, memory_mb: int, seconds: float) -> SandboxResult:
    """A child that ended without an answer while running the model: by a signal, or exiting
    on its own."""
    number = -exchange.returncode
    if number == signal.SIGXCPU:  # its CPU time ran out before the parent's clock did
        return SandboxResult("timeout", _TIMEOUT, {"seconds": _number(seconds)})
    # Nothing but the kernel's OOM killer sends SIGKILL to a child the parent did not kill.
    if number == signal.SIGKILL or _mentions_memory(exchange.stderr.decode("utf-8", "replace")):
        return _out_of_memory(memory_mb)
    if number > 0:
        return SandboxResult(
            "crashed",
            gettext_noop("The model crashed on a test image (the process got %(signal)s)."),
            {"signal": _signal_name(number)},
        )
    return SandboxResult(
        "crashed",
        gettext_noop("The model crashed on a test image (exit status %(status)s): %(detail)s"),
        {"status": exchange.returncode, "detail": _last_words(exchange)},
    )


def _last_words(exchange: _Exchange) -> str:
    """The signal that ended the child, or the last line it wrote to its error output."""
    if exchange.returncode < 0:
        return _signal_name(-exchange.returncode)
    lines = exchange.stderr.decode("utf-8", "replace").strip().splitlines()
    return _cut(lines[-1] if lines else f"exit status {exchange.returncode}")


def _out_of_memory(memory_mb: int) -> SandboxResult:
    return SandboxResult(
        "out_of_memory",
        gettext_noop(
            "The model ran out of memory on a test image: a run may use at most %(limit)s MB."
        ),
        {"limit": memory_mb},
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _number(value: float) -> str:
    return f"{value:g}"


def _mentions_memory(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _MEMORY_WORDS)


def _cut(text: str) -> str:
    joined = " ".join(text.split())
    return joined if len(joined) <= MAX_DETAIL else joined[: MAX_DETAIL - 1] + "…"


# ---------------------------------------------------------------------------- the child


def child_main(name: str, options_json: str) -> None:
    """The child's side, called by ``BOOTSTRAP`` once the limits are set: read the model,
    run it, answer once, and exit at once (no teardown of onnxruntime's threads)."""
    answer_fd = os.dup(1)
    os.dup2(2, 1)  # whatever the libraries print goes to stderr, never into the answer
    answer: dict[str, Any]
    try:
        options = json.loads(options_json)
        data = sys.stdin.buffer.read()
        run = _resolve(name)
        import numpy  # noqa: F401 — loaded here so a failure to load them is the sandbox's
        import onnxruntime  # noqa: F401

        os.write(answer_fd, RUNNING)
        answer = {"outcome": "ok", "report": dict(run(data, **options))}
        json.dumps(answer)  # a report that is not plain data fails here, as the run's error
    except BaseException as error:  # everything, MemoryError and SystemExit included
        text = f"{type(error).__name__}: {error}"
        outcome = "memory" if isinstance(error, MemoryError) or _mentions_memory(text) else "error"
        answer = {"outcome": outcome, "detail": _cut(text)}
    answer["peak_rss_bytes"] = _peak_rss(os.getpid())
    payload = json.dumps(answer)
    sys.stderr.flush()
    with os.fdopen(answer_fd, "wb") as out:
        out.write(payload.encode())
    os._exit(0)


def _resolve(name: str) -> RunFunction:
    module, _, qualname = name.partition(":")
    found: Any = import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def run_once(data: bytes, *, side: int = DEFAULT_SIDE, seed: int = 0) -> dict[str, Any]:
    """The default validation: an onnxruntime CPU session from ``data`` (one thread, no
    arena), run once on random values in [0, 1) shaped as its inputs declare (a symbolic batch
    is 1, any other symbolic dimension ``side``). Reports each output's name, shape and type,
    and the seconds taken to build the session and to run it."""
    import numpy as np
    import onnxruntime as ort

    settings = ort.SessionOptions()
    settings.intra_op_num_threads = 1
    settings.inter_op_num_threads = 1
    settings.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    settings.enable_cpu_mem_arena = False
    settings.log_severity_level = 3  # errors only: warnings about a model are not its failure
    started = time.perf_counter()
    session = ort.InferenceSession(data, sess_options=settings, providers=["CPUExecutionProvider"])
    loaded = time.perf_counter()
    rng = np.random.default_rng(seed)
    feeds = {arg.name: _test_tensor(arg.type, arg.shape, side, rng) for arg in session.get_inputs()}
    values = session.run(None, feeds)
    finished = time.perf_counter()
    return {
        "inputs": [{"name": name, "shape": list(value.shape)} for name, value in feeds.items()],
        "outputs": [
            {
                "name": arg.name,
                "shape": [int(size) for size in getattr(value, "shape", ())],
                "dtype": str(getattr(value, "dtype", type(value).__name__)),
            }
            for arg, value in zip(session.get_outputs(), values, strict=True)
        ],
        "load_seconds": loaded - started,
        "run_seconds": finished - loaded,
    }


_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def _test_tensor(kind: str, shape: list[Any], side: int, rng: Any) -> Any:
    import numpy as np

    dims = [
        size if isinstance(size, int) and size >= 0 else (1 if axis == 0 else side)
        for axis, size in enumerate(shape)
    ]
    dtype = np.dtype(_ORT_TYPES.get(kind, "float32"))
    if dtype.kind == "f":
        return rng.random(dims, dtype=np.float32).astype(dtype, copy=False)
    return np.zeros(dims, dtype=dtype)
