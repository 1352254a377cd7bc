"""The settings of the detection service (`defectlab serve-inference`) and of edge mirrors:
part of `defectlab.settings`, which imports them all; read through `defectlab.config.env`."""

from __future__ import annotations

from defectlab.config import (
    boolean,
    csv_list,
    env,
    positive_float,
    positive_int,
    whole_number,
    zero_or_more,
)

INFERENCE_HOST = env(
    "DEFECTLAB_INFERENCE_HOST", "127.0.0.1", "Address `defectlab serve-inference` listens on."
)
INFERENCE_PORT = env(
    "DEFECTLAB_INFERENCE_PORT",
    "8090",
    "Port `defectlab serve-inference` listens on.",
    positive_int,
)
INFERENCE_RUNNERS = env(
    "DEFECTLAB_INFERENCE_RUNNERS",
    "0",
    "Models the detection service runs at once (threads, each with DEFECTLAB_INFERENCE_THREADS "
    "of its own). 0: one per usable core.",
    whole_number,
)
INFERENCE_THREADS = env(
    "DEFECTLAB_INFERENCE_THREADS",
    "1",
    "onnxruntime threads of each of those runs. On a CPU, several runs of one thread each serve "
    "more requests than one run of several threads.",
    positive_int,
)
INFERENCE_MEMORY_MB = env(
    "DEFECTLAB_INFERENCE_MEMORY_MB",
    "2048",
    "Memory the detection service may give to loaded models, in MB (about three times a model's "
    "file size each); the model used least recently is unloaded to make room.",
    positive_int,
)
INFERENCE_QUEUE = env(
    "DEFECTLAB_INFERENCE_QUEUE",
    "64",
    "Images one organization may have waiting for one model; more are refused with 503 and "
    "Retry-After instead of waiting ever longer.",
    positive_int,
)
INFERENCE_BATCH_WINDOW_MS = env(
    "DEFECTLAB_INFERENCE_BATCH_WINDOW_MS",
    "2",
    "How long a run of a model that takes several images at once waits for more to arrive, in "
    "milliseconds.",
    positive_float,
)
INFERENCE_MAX_BODY_MB = env(
    "DEFECTLAB_INFERENCE_MAX_BODY_MB",
    "64",
    "Largest detection request body, in MB, whatever an organization's largest image: a request "
    "is read into memory whole, so this bounds the memory each one may take.",
    positive_int,
)
INFERENCE_PRELOAD = env(
    "DEFECTLAB_INFERENCE_PRELOAD",
    "production",
    "Comma-separated alias names: every model's version under one of them is loaded and warmed "
    "before the detection service says it is ready (/readyz). Empty: models load when first asked.",
    csv_list,
)
INFERENCE_REFRESH_SECONDS = env(
    "DEFECTLAB_INFERENCE_REFRESH_SECONDS",
    "2",
    "How often the detection service re-reads keys, quotas and aliases: a revoked key or a moved "
    "alias takes effect on every replica within this many seconds.",
    positive_float,
)
# ---- an edge mirror (`defectlab serve-inference --upstream … --follow …`, docs/edge.md)
MIRROR_UPSTREAM = env(
    "DEFECTLAB_MIRROR_UPSTREAM",
    "",
    "An edge mirror's center: the detection service it follows, e.g. `https://inference.example`. "
    "Set (or `--upstream`), `defectlab serve-inference` runs as an edge mirror, without a database.",
)
MIRROR_KEY = env(
    "DEFECTLAB_MIRROR_KEY",
    "",
    "The organization API key (`dlk_…`, with the `models` scope) an edge mirror calls its center "
    "with, and its callers authenticate with; here rather than `--key` keeps it off the command "
    "line.",
)
MIRROR_FOLLOW = env(
    "DEFECTLAB_MIRROR_FOLLOW",
    "",
    "Comma-separated `NAME:ALIAS`es an edge mirror follows and serves (as `--follow`).",
    csv_list,
)
MIRROR_SIGN = env(
    "DEFECTLAB_MIRROR_SIGN",
    "false",
    "An edge mirror signs its calls to the center instead of sending the key (as `--sign`).",
    boolean,
)
MIRROR_REFRESH_SECONDS = env(
    "DEFECTLAB_MIRROR_REFRESH_SECONDS",
    "0",
    "How often an edge mirror asks its center where its aliases point, in seconds. 0: every "
    "DEFECTLAB_INFERENCE_REFRESH_SECONDS.",
    zero_or_more,
)
MIRROR_BACKOFF_MAX_SECONDS = env(
    "DEFECTLAB_MIRROR_BACKOFF_MAX_SECONDS",
    "300",
    "Longest wait between an edge mirror's attempts while its center cannot be reached (or keeps "
    "sending a file that fails its check): the waits double from the refresh interval up to "
    "this, with jitter.",
    positive_float,
)
REDIS_URL = env(
    "DEFECTLAB_REDIS_URL",
    "",
    "Redis shared by the detection service's replicas, e.g. `redis://127.0.0.1:6379/0`: quotas and "
    "signed requests' nonces hold across all of them. Empty: each process counts on its own.",
)
SIGNATURE_WINDOW_SECONDS = env(
    "DEFECTLAB_SIGNATURE_WINDOW_SECONDS",
    "300",
    "How far a signed request's timestamp may be from the service's clock, in seconds; its nonce "
    "is remembered that long, so the same request is never accepted twice.",
    positive_int,
)
QUOTA_REQUESTS_PER_MINUTE = env(
    "DEFECTLAB_QUOTA_REQUESTS_PER_MINUTE",
    "600",
    "Detection requests an organization may make per minute, unless the operator set its quota. "
    "0: no limit.",
    whole_number,
)
QUOTA_IMAGES_PER_DAY = env(
    "DEFECTLAB_QUOTA_IMAGES_PER_DAY",
    "100000",
    "Images an organization may send for detection per day (UTC), unless its quota says. 0: no limit.",
    whole_number,
)
QUOTA_CONCURRENT = env(
    "DEFECTLAB_QUOTA_CONCURRENT",
    "8",
    "Detection requests an organization may have in progress at once, unless its quota says. "
    "0: no limit.",
    whole_number,
)
QUOTA_MAX_IMAGE_MB = env(
    "DEFECTLAB_QUOTA_MAX_IMAGE_MB",
    "20",
    "Largest image, in MB, an organization may send for detection, unless its quota says. 0: no "
    "limit beyond DEFECTLAB_MAX_UPLOAD_MB.",
    whole_number,
)
