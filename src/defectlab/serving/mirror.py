"""The edge mirror: `defectlab serve-inference --upstream URL --key KEY --follow NAME:ALIAS`, a
detection service on a line PC that follows aliases of the center's models and keeps answering
`/v1/detect` with the last verified version while the center cannot be reached.

It needs no database. Its keeps, under ``$DEFECTLAB_DATA_DIR/mirror/<NAME>/<ALIAS>/``:
``<sha256>.onnx`` (the verified version), ``<sha256>.part`` (a download under way, resumed with
``Range``) and ``state.json`` (the version that is current; written to a temporary file, then
renamed over the old one).

A follower thread asks the center which version each alias names (every
DEFECTLAB_MIRROR_REFRESH_SECONDS); a new one is downloaded, its SHA-256 checked BEFORE anything
else, loaded and warmed, the state written, and the route switched (one assignment: a request
that started on the old version finishes on it). A file that does not hash to what the center
says is deleted, logged and not fetched again before its back-off ends; the old version keeps
answering. The center unreachable: retried with exponential back-off and jitter (at most
DEFECTLAB_MIRROR_BACKOFF_MAX_SECONDS apart). At start, the stored version is hashed again and
loaded before the center is asked anything, so a restart without network serves it.

Callers authenticate with the mirror's own key (bearer or signed); the mirror keeps its SHA-256
and signing key, as the center does. No quotas and no metering to the center: each call is a
log line and counted in /metrics. `Mirror.equip` puts this in place of the service's keys,
routes, counters and meter (serving/app.py's `Service`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
from django.conf import settings
from django.utils.translation import gettext as _

from defectlab import signature
from defectlab.errors import DefectLabError, Invalid, NotFound
from defectlab.serving.keys import KeyInfo, digest
from defectlab.serving.limits import LocalCounters
from defectlab.serving.loaded import OVERHEAD, Loaded, Models, Routes
from defectlab.serving.meter import Meter
from defectlab.serving.models import Scope
from defectlab.serving.quotas import Limits
from defectlab.serving.upstream import Upstream, UpstreamError

if TYPE_CHECKING:
    from defectlab.serving.app import Service

log = logging.getLogger(__name__)

ORGANIZATION = 0  # the edge's one organization (the center's id is not needed here)
STATE = "state.json"
UNLIMITED = Limits(None, None, None, None)


def parse_follow(text: str) -> tuple[str, str]:
    """``(name, alias)`` of ``NAME:ALIAS`` (``NAME`` alone follows ``production``)."""
    name, colon, alias = text.strip().rpartition(":")
    if not colon:
        name, alias = alias, "production"
    name, alias = name.strip(), alias.strip()
    if not name or not alias:
        raise ValueError(f"expected NAME:ALIAS, not {text!r}")
    return name, alias


def _directory_name(text: str) -> str:
    # Percent-encoded, dots too: no "/", "." or ".." can come out of a model's name.
    return quote(text, safe="").replace(".", "%2E")


@dataclass(eq=False)
class Follow:
    """One followed alias and where it stands."""

    name: str
    alias: str
    directory: Path
    loaded: Loaded | None = None
    last_sync: datetime | None = None  # the center last answered (and the version is current)
    last_error: str | None = None
    failures: int = 0  # in a row, for the back-off
    next_try: float = 0.0  # monotonic
    # A refused file's SHA-256 → (times refused, the center's answers to let pass before the next try)
    refused: dict[str, tuple[int, int]] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        loaded = self.loaded
        return {
            "model": self.name,
            "alias": self.alias,
            "ready": loaded is not None,
            "version": loaded.number if loaded else None,
            "sha256": loaded.sha256 if loaded else None,
            "last_sync": self.last_sync.isoformat() if self.last_sync else None,
            "last_error": self.last_error,
        }


class Refused(Exception):
    """A downloaded version that cannot be used (wrong hash, or it does not load)."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_state(directory: Path, state: dict[str, Any]) -> None:
    """``state.json``, replaced whole or not at all."""
    temporary = directory / f".{STATE}.{os.getpid()}.tmp"
    with temporary.open("w") as file:
        json.dump(state, file, indent=1, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, directory / STATE)
    with contextlib.suppress(OSError):  # the rename itself made durable, where the OS allows
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def read_state(directory: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((directory / STATE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.error("the mirror's state file in %s cannot be read; ignoring it", directory)
        return None
    return state if isinstance(state, dict) else None


class Mirror:
    def __init__(
        self,
        upstream: Upstream,
        key: str,
        follows: list[tuple[str, str]],
        directory: Path,
        *,
        refresh_seconds: float,
        backoff_max_seconds: float,
    ) -> None:
        parts = signature.split_key(key)
        if parts is None:
            raise ValueError("not a DefectLab organization API key (dlk_…)")
        if not follows:
            raise ValueError("follow at least one NAME:ALIAS")
        self.upstream = upstream
        # What callers' keys are checked against: the key's hash and signing key, as at the center.
        self.key = KeyInfo(
            pk=0,
            key_id=parts[0],
            organization_id=ORGANIZATION,
            scopes=frozenset({Scope.DETECT.value}),
            # A mirror that signs its own calls refuses the key as a bearer token from its
            # callers too: a key kept for signed requests must not be sent in the clear anywhere.
            signed_only=upstream.signed,
            secret_hash=digest(key),
            signing_key=signature.signing_key(key),
        )
        self.directory = directory
        self.follows = [
            Follow(name, alias, directory / _directory_name(name) / _directory_name(alias))
            for name, alias in dict.fromkeys(follows)
        ]
        self.refresh_seconds = refresh_seconds
        self.backoff_max = max(backoff_max_seconds, refresh_seconds)
        self._service: Service | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ids = iter(range(1, 2**62))  # the scheduler tells versions apart by this id
        self.swaps = 0
        self.refusals = 0

    # ------------------------------------------------------------------ in the service

    def equip(self, service: Service) -> None:
        """Put the mirror's keys, routes, counters and meter in ``service``'s place."""
        from defectlab.serving.access import KeyCache

        self._service = service
        service.keys = KeyCache(service.refresh_seconds, self._key)
        service.counters = LocalCounters()
        service.models = _Held(self)
        service.routes = MirrorRoutes(self, service.models)
        service.meter = LogMeter()
        service._limits[ORGANIZATION] = (UNLIMITED, math.inf)  # no quotas at the edge

    def _key(
        self, _function: Callable[[str], KeyInfo | None], key_id: str
    ) -> Awaitable[KeyInfo | None]:
        async def found() -> KeyInfo | None:
            return self.key if key_id == self.key.key_id else None

        return found()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mirror", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.upstream.close()

    def readiness(self) -> dict[str, Any]:
        follows = [follow.state() for follow in self.follows]
        return {
            "ready": all(follow["ready"] for follow in follows),
            "mirror": {"upstream": self.upstream.url},
            "models_loaded": sum(1 for follow in follows if follow["ready"]),
            "follows": follows,
        }

    @staticmethod
    def no_urls() -> DefectLabError:
        """The refusal of images by URL: the fetcher's allowlist is in the center's database."""
        return Invalid(
            _("An edge mirror does not fetch images by URL: send the image itself."),
            code="urls_not_served",
        )

    # ------------------------------------------------------------------ the follower

    def _run(self) -> None:
        for follow in self.follows:
            self._restore(follow)
        while not self._stop.is_set():
            for follow in self.follows:
                if self._stop.is_set():
                    return
                if follow.next_try <= time.monotonic():
                    self._sync_guarded(follow)
            wait = min(follow.next_try for follow in self.follows) - time.monotonic()
            self._stop.wait(max(0.01, wait))

    def _restore(self, follow: Follow) -> None:
        """The stored verified version, hashed again and loaded: no network needed."""
        state = read_state(follow.directory)
        if state is None:
            return
        path = follow.directory / f"{state.get('sha256')}.onnx"
        try:
            data = path.read_bytes()
            if sha256_of(data) != state["sha256"]:
                path.unlink()  # fetched again at the next sync
                raise Refused(f"the stored file {path.name} no longer has its SHA-256; deleted")
            follow.loaded = self._load(state, data)
        except (OSError, KeyError, Refused) as error:
            follow.last_error = str(error)
            log.error("the stored version of %s:%s cannot be used: %s", *self._route(follow), error)
            return
        log.info(
            "serving %s:%s v%s (%s) as stored",
            follow.name,
            follow.alias,
            state["version"],
            state["sha256"][:12],
        )

    @staticmethod
    def _route(follow: Follow) -> tuple[str, str]:
        return follow.name, follow.alias

    def _backoff(self, attempts: int) -> float:
        ceiling = min(self.backoff_max, self.refresh_seconds * 2 ** min(attempts, 30))
        return random.uniform(ceiling / 2, ceiling)

    def _refusal_wait(self, times: int) -> int:
        """How many of the center's answers pass before a refused file is fetched again: 4, 8,
        16… refreshes, up to DEFECTLAB_MIRROR_BACKOFF_MAX_SECONDS' worth."""
        ceiling = max(1, int(self.backoff_max / self.refresh_seconds))
        return min(2 ** min(times + 1, 30), ceiling)

    def _sync_guarded(self, follow: Follow) -> None:
        """`sync`, where anything unexpected (a full disk, a permission) is the follow's error
        and a wait, not the end of the thread that follows."""
        try:
            self.sync(follow)
        except Exception as error:
            follow.failures += 1
            follow.last_error = str(error) or type(error).__name__
            follow.next_try = time.monotonic() + self._backoff(follow.failures)
            log.exception("syncing %s:%s failed", follow.name, follow.alias)

    def sync(self, follow: Follow) -> None:
        """Ask the center once, and take the alias's new version if it moved."""
        sha256 = ""
        try:
            meta = self.upstream.alias(follow.name, follow.alias)
            sha256 = meta["sha256"]
            current = follow.loaded
            if current is None or current.sha256 != sha256:
                times, waiting = follow.refused.get(sha256, (0, 0))
                if waiting > 0:  # that file was refused: not again before its back-off ends
                    follow.refused[sha256] = (times, waiting - 1)
                    follow.next_try = time.monotonic() + self.refresh_seconds
                    return
                self._take(follow, meta)
            if follow.loaded is not None and self._service is not None:
                # The organization's saved sensitivity may change without a new file.
                thresholds = (float(meta["conf"]), float(meta["iou"]))
                self._service.routes.defaults[follow.loaded.version_id] = thresholds
        except UpstreamError as error:
            follow.failures += 1
            follow.next_try = time.monotonic() + self._backoff(follow.failures)
            if follow.last_error != str(error):
                log.warning("syncing %s:%s: %s", follow.name, follow.alias, error)
            follow.last_error = str(error)
            return
        except Refused as error:
            times = follow.refused.get(sha256, (0, 0))[0] + 1
            follow.refused[sha256] = (times, self._refusal_wait(times))
            follow.last_error = str(error)
            follow.next_try = time.monotonic() + self.refresh_seconds
            self.refusals += 1
            if self._service is not None:
                self._service.metrics.swap_failures.inc()
            log.error("refused a new version of %s:%s: %s", follow.name, follow.alias, error)
            return
        follow.failures = 0
        follow.last_sync = datetime.now(UTC)
        follow.last_error = None
        follow.refused.pop(sha256, None)
        follow.next_try = time.monotonic() + self.refresh_seconds

    def _take(self, follow: Follow, meta: dict[str, Any]) -> None:
        sha256 = meta["sha256"]
        follow.directory.mkdir(parents=True, exist_ok=True)
        final = follow.directory / f"{sha256}.onnx"
        if not final.exists():
            part = follow.directory / f"{sha256}.part"
            received = self.upstream.download(meta["file"], part, sha256, meta["size"])
            data = part.read_bytes()
            if len(data) < meta["size"]:
                raise UpstreamError(f"the download stopped at {len(data)} of {meta['size']} bytes")
            if sha256_of(data) != sha256:
                part.unlink(missing_ok=True)
                raise Refused(
                    f"v{meta['version']}: the downloaded file does not have the SHA-256 the "
                    f"center gives ({sha256[:12]}…); deleted, the current version keeps serving"
                )
            log.info(
                "downloaded %s:%s v%s (%s bytes)", *self._route(follow), meta["version"], received
            )
            os.replace(part, final)
        data = final.read_bytes()
        if sha256_of(data) != sha256:  # a stored file that changed: fetch it again
            final.unlink(missing_ok=True)
            raise Refused(f"v{meta['version']}: the stored file no longer has its SHA-256")
        try:
            loaded = self._load(meta, data)
        except Exception as error:
            message = error.message if isinstance(error, DefectLabError) else str(error)
            raise Refused(f"v{meta['version']} does not load: {message}") from None
        write_state(follow.directory, {**meta, "synced_at": datetime.now(UTC).isoformat()})
        old, follow.loaded = follow.loaded, loaded  # the switch: one assignment
        self.swaps += 1
        if self._service is not None:
            self._service.metrics.swaps.inc()
        log.info(
            "%s:%s now answers with v%s (%s)",
            follow.name,
            follow.alias,
            loaded.number,
            sha256[:12],
            extra={"previous": old.number if old else None},
        )
        for stale in follow.directory.iterdir():  # other versions' files, and stale parts
            if stale.suffix in (".onnx", ".part") and stale.stem != sha256:
                stale.unlink(missing_ok=True)

    def _load(self, meta: dict[str, Any], data: bytes) -> Loaded:
        from defectlab.inference.engine import Detector
        from defectlab.inference.engine.errors import EngineError

        height, width = (int(v) for v in meta["input_size"])
        try:
            detector = Detector(
                data,
                names=meta.get("names") or None,
                conf=meta["conf"],
                iou=meta["iou"],
                max_det=meta["max_det"],
                input_size=(height, width),
                threads=settings.INFERENCE_THREADS,
                memory_arena=False,
                max_pixels=settings.MAX_IMAGE_PIXELS,
            )
            detector.detect(np.full((height, width, 3), 114, np.uint8))  # warm
        except EngineError as error:
            raise Refused(error.localized(_)) from None
        return Loaded(
            version_id=next(self._ids),
            organization_id=ORGANIZATION,
            model_name=meta["model"],
            number=int(meta["version"]),
            sha256=meta["sha256"],
            detector=detector,
            footprint=OVERHEAD * len(data),
        )


class _Held(Models):
    """The service's models, as the metrics count them: the mirror's loaded versions."""

    def __init__(self, mirror: Mirror) -> None:
        super().__init__(0, 1)
        self._mirror = mirror

    def held(self) -> list[Loaded]:
        return [f.loaded for f in self._mirror.follows if f.loaded is not None]


class MirrorRoutes(Routes):
    """Only the followed names answer: ``NAME`` (its ``production`` follow), ``NAME:ALIAS``,
    or ``NAME`` with the number of a version a follow holds."""

    def __init__(self, mirror: Mirror, models: Models) -> None:
        super().__init__(models)
        self._mirror = mirror

    def resolve(
        self, organization: int, name: str, alias: str | None, number: int | None
    ) -> Loaded:
        alias = alias or "production"
        followed = [f for f in self._mirror.follows if f.name == name]
        for follow in followed:
            loaded = follow.loaded
            if number is not None and loaded is not None and loaded.number == number:
                return loaded
            if number is None and follow.alias == alias:
                if loaded is None:
                    error = DefectLabError(
                        _(
                            "This edge mirror has no verified version of %(model)s yet: "
                            "try again shortly."
                        )
                        % {"model": f"{name}:{alias}"},
                        code="model_not_ready",
                    )
                    error.status = 503
                    raise error
                return loaded
        asked = f"{name}:{number}" if number is not None else f"{name}:{alias}"
        raise NotFound(
            _("This edge mirror does not serve %(model)s; it follows: %(follows)s.")
            % {
                "model": asked,
                "follows": ", ".join(f"{f.name}:{f.alias}" for f in self._mirror.follows),
            },
            code="model_not_found",
        )

    def preload(self, aliases: list[str]) -> None:
        """Nothing: the mirror's follower loads what it follows."""

    def refresh(self) -> None:
        """Nothing: the mirror's follower follows the aliases."""


class LogMeter(Meter):
    """Each call a log line (`Meter.add`), and no rows: the edge has no database."""

    def flush(self) -> int:
        with self._lock:
            count, self._waiting = len(self._waiting), []
        return count
