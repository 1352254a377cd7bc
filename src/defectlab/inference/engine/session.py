"""onnxruntime sessions made from a model's bytes, tuned for the machine they run on."""

from __future__ import annotations

import os
from collections.abc import Sequence

import onnxruntime as ort

from defectlab.inference.engine.errors import UNREADABLE_MODEL, ModelError

# Fastest first; onnxruntime falls back along the list per node, CPU last takes everything.
_PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
# More intra-op threads than this buys little for a YOLO-sized graph and starves other models
# and the web process sharing the machine.
MAX_DEFAULT_THREADS = 8
_REASON_CHARS = 300
SPINNING = "session.intra_op.allow_spinning"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers narrow), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    return min(usable_cores(), MAX_DEFAULT_THREADS)


def providers(requested: Sequence[str] | None = None) -> list[str]:
    """The execution providers to use: TensorRT and CUDA where this onnxruntime build has them,
    then CPU; ``requested`` narrows the choice (names this build lacks are left out)."""
    available = set(ort.get_available_providers())
    wanted = _PREFERRED if requested is None else tuple(requested)
    chosen = [name for name in wanted if name in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def session_options(*, threads: int | None = None, memory_arena: bool = True) -> ort.SessionOptions:
    """Options for one model: ``threads`` intra-op threads (default: the usable cores, at most
    8), one inter-op thread (a YOLO graph is a chain: parallel branches gain nothing), no
    spin-waiting between runs, every graph optimization. ``memory_arena=False`` gives memory
    back after each run instead of keeping a per-session pool of the largest run's size:
    choose it when many models share one process, where idle arenas add up."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads if threads is not None else default_threads())
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = memory_arena
    # Idle intra-op threads sleep until the next run instead of spin-waiting for it: on a
    # machine shared with the web server, the database and other jobs (and with the image
    # decode between two runs), spinning threads take the cores the others need. Measured by
    # bench/engine.py (its "spinning" case).
    options.add_session_config_entry(SPINNING, "0")
    options.log_severity_level = 3  # errors only: warnings about unused initializers are noise
    return options


def create_session(
    model: bytes,
    *,
    threads: int | None = None,
    memory_arena: bool = True,
    execution_providers: Sequence[str] | None = None,
) -> ort.InferenceSession:
    """An inference session for the ONNX model in ``model`` (its bytes: the registry keeps
    models in object storage, never as paths); raises ModelError if onnxruntime refuses it."""
    options = session_options(threads=threads, memory_arena=memory_arena)
    try:
        return ort.InferenceSession(
            model, sess_options=options, providers=providers(execution_providers)
        )
    except Exception as error:  # onnxruntime raises its own types, and RuntimeError
        raise ModelError("unreadable_model", UNREADABLE_MODEL, reason=reason(error)) from error


def reason(error: BaseException) -> str:
    """onnxruntime's message, first line only and cut to a readable length."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"
