"""The detection service's ASGI app (Starlette): `/v1/detect`, `/healthz`, `/readyz`,
`/metrics`, `/openapi.json`. `defectlab serve-inference` serves it with uvicorn.

One request to `/v1/detect`, in order: the caller's key (bearer or signed; headers only), its
organization's rate and concurrency (429), the body (read in memory, capped; a signed request's
body checked against its hash), the parameters and images (400 / 413 / 415), the day's images
(429), the model version (404 unless the caller's organization has it), the scheduler (503 when
the organization's queue for that model is full), the answer. Every answered call is metered,
the refusals included (those of a known key)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from django.conf import settings
from django.db import close_old_connections, connection, connections
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import trans_real
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from defectlab.errors import (
    DefectLabError,
    Invalid,
    ServerError,
    Throttled,
    TooLarge,
    Unavailable,
    error_body,
)
from defectlab.inference.engine.errors import EngineError
from defectlab.inference.engine.session import usable_cores
from defectlab.serving import inputs
from defectlab.serving.access import Caller, KeyCache, authenticate, check_body
from defectlab.serving.limits import OverQuota, counters
from defectlab.serving.loaded import MB, Loaded, Models, Routes
from defectlab.serving.meter import Meter, Record, elapsed_ms, now
from defectlab.serving.metrics import CHALLENGE as METRICS_CHALLENGE
from defectlab.serving.metrics import Metrics
from defectlab.serving.metrics import allowed as metrics_allowed
from defectlab.serving.metrics import refusal as metrics_refusal
from defectlab.serving.models import Scope
from defectlab.serving.openapi import schema
from defectlab.serving.quotas import Limits, limits_of
from defectlab.serving.scheduler import Options, Overloaded, Scheduler, Work

if TYPE_CHECKING:
    from defectlab.serving.mirror import Mirror

log = logging.getLogger(__name__)
T = TypeVar("T")


def language(request: Request) -> str:
    """The caller's language from Accept-Language, else the installation's."""
    header = request.headers.get("accept-language", "")
    for code, _quality in trans_real.parse_accept_lang_header(header[:200]):
        if code == "*":
            break
        try:
            return trans_real.get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


def _in_language(lang: str, function: Callable[..., T], *args: Any) -> T:
    close_old_connections()
    with translation.override(lang):
        return function(*args)


BLOCKING_THREADS = 16  # database reads and model loads off the event loop
FETCH_THREADS = 8  # images by URL, fetched apart so that a slow server holds only these


def _close_connections(barrier: threading.Barrier) -> None:
    connections.close_all()
    barrier.wait(timeout=30)  # each thread of the pool takes one of these, none takes two


class Service:
    """Everything one process of the service holds."""

    def __init__(self, mirror: Mirror | None = None) -> None:
        self.counters = counters(settings.REDIS_URL)
        self.refresh_seconds = settings.INFERENCE_REFRESH_SECONDS
        self.keys = KeyCache(self.refresh_seconds, self.blocking_default)
        self.models = Models(settings.INFERENCE_MEMORY_MB * MB, settings.INFERENCE_THREADS)
        self.routes = Routes(self.models, self.refresh_seconds)
        self.metrics = Metrics(lambda: self.scheduler.depth(), lambda: len(self.models.held()))
        self.scheduler = Scheduler(
            settings.INFERENCE_RUNNERS or usable_cores(),
            settings.INFERENCE_QUEUE,
            settings.INFERENCE_BATCH_WINDOW_MS / 1000,
            observe=self.metrics.observe_run,
        )
        self.meter = Meter()
        self.executor = ThreadPoolExecutor(BLOCKING_THREADS, thread_name_prefix="blocking")
        self.fetches = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="fetch")
        self._limits: dict[int, tuple[Limits, float]] = {}
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self.ready = False
        # An edge mirror (serving/mirror.py) puts its own keys, routes and meter in place here.
        self.mirror = mirror
        if mirror is not None:
            mirror.equip(self)

    async def blocking(self, lang: str, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on the service's pool of threads, in the language ``lang``."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, functools.partial(_in_language, lang, function, *args)
        )

    async def blocking_default(self, function: Callable[..., T], *args: Any) -> T:
        return await self.blocking(settings.LANGUAGE_CODE, function, *args)

    async def limits(self, organization: int) -> Limits:
        kept = self._limits.get(organization)
        if kept is not None and kept[1] > time.monotonic():
            return kept[0]
        limits = await self.blocking_default(limits_of, organization)
        self._limits[organization] = (limits, time.monotonic() + self.refresh_seconds)
        return limits

    def start(self) -> None:
        self.scheduler.start()
        self.meter.start()
        self._refresher = threading.Thread(target=self._refresh, name="refresher", daemon=True)
        self._refresher.start()
        if self.mirror is not None:
            self.mirror.start()

    def _refresh(self) -> None:
        try:
            self.routes.preload(settings.INFERENCE_PRELOAD)
        except Exception:
            log.exception("preloading models failed")
        self.ready = True
        swaps, failures = 0, 0
        try:
            while not self._stop.wait(self.refresh_seconds):
                try:
                    self.routes.refresh()
                except Exception:
                    log.exception("refreshing aliases failed")
                self.metrics.swaps.inc(self.routes.swaps - swaps)
                self.metrics.swap_failures.inc(self.routes.swap_failures - failures)
                swaps, failures = self.routes.swaps, self.routes.swap_failures
        finally:
            connections.close_all()

    async def stop(self) -> None:
        self._stop.set()
        loop = asyncio.get_running_loop()
        if self.mirror is not None:
            await loop.run_in_executor(None, self.mirror.stop)
        await loop.run_in_executor(None, self.scheduler.stop)  # runs what is queued, then stops
        await loop.run_in_executor(None, self.meter.stop)
        if self._refresher is not None:
            await loop.run_in_executor(None, self._refresher.join, 30)
        barrier = threading.Barrier(BLOCKING_THREADS)
        for _thread in range(BLOCKING_THREADS):
            self.executor.submit(_close_connections, barrier)
        await loop.run_in_executor(None, functools.partial(self.executor.shutdown, wait=True))
        self.fetches.shutdown(wait=False, cancel_futures=True)
        close = getattr(self.counters, "close", None)
        if close is not None:
            await close()


def client_ip(request: Request) -> str | None:
    """The caller's address (the proxy's first X-Forwarded-For where trusted), if it is one."""
    if settings.PROXY_HEADERS and request.headers.get("x-forwarded-for"):
        text = request.headers["x-forwarded-for"].split(",")[0].strip()
    else:
        text = request.client.host if request.client else ""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def failure(error: DefectLabError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        error_body(error.code, error.message, error.details),
        status_code=error.status,
        headers=headers,
    )


def body_too_large(cap: int) -> TooLarge:
    return TooLarge(
        _("The request is larger than this service takes (%(mb)s MB): send fewer images at once.")
        % {"mb": round(cap / 1024 / 1024, 1)},
        code="body_too_large",
    )


async def read_body(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise body_too_large(cap)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise body_too_large(cap)
        chunks.append(chunk)
    return b"".join(chunks)


def _class_indices(loaded: Loaded, names: tuple[str, ...] | None) -> tuple[int, ...] | None:
    if names is None:
        return None
    known = {name: index for index, name in enumerate(loaded.detector.names)}
    missing = [name for name in names if name not in known]
    if missing:
        raise Invalid(
            _("The model has no class named %(name)s; its classes: %(names)s.")
            % {"name": missing[0], "names": ", ".join(loaded.detector.names)},
            code="invalid_parameter",
            details={"field": "classes"},
        )
    return tuple(sorted({known[name] for name in names}))


def _fetch(lang: str, url: str, allowlist: Any, max_image: int) -> bytes:
    from defectlab.ingest.fetcher import fetch

    with translation.override(lang):  # a refusal is the caller's to read
        return fetch(url, allowlist=allowlist, max_bytes=max_image).body


async def _fetch_urls(
    service: Service, lang: str, organization: int, urls: list[tuple[int, str]], max_image: int
) -> list[bytes]:
    """The images at ``urls``, fetched at once on the service's fetching threads (never on the
    threads that read keys and models: a slow server holds only what waits for it)."""
    from defectlab.ingest.services import allowlist_for

    allowlist = await service.blocking(lang, allowlist_for, organization)
    loop = asyncio.get_running_loop()
    fetching = [
        loop.run_in_executor(service.fetches, _fetch, lang, url, allowlist, max_image)
        for _position, url in urls
    ]
    return list(await asyncio.gather(*fetching))


def _result(index: int, outcome: Any) -> dict[str, Any]:
    """One image's part of the answer (numbers rounded by numpy, a whole array at a time: a
    model finding hundreds of boxes made this the event loop's largest cost)."""
    if isinstance(outcome, EngineError):
        return {"index": index, "error": {"code": outcome.code, "message": outcome.localized(_)}}
    classes = outcome.classes.astype(np.int64).tolist()
    boxes = np.round(outcome.boxes.astype(np.float64), 2).tolist()
    scores = np.round(outcome.scores.astype(np.float64), 4).tolist()
    found = [
        {"class": outcome.name(kind), "class_id": kind, "score": score, "box": box}
        for kind, score, box in zip(classes, scores, boxes, strict=True)
    ]
    if outcome.polygons is not None:
        for item, polygon in zip(found, outcome.polygons, strict=True):
            if polygon is not None:
                item["polygon"] = np.round(polygon.astype(np.float64), 2).tolist()
    timings = outcome.timings
    return {
        "index": index,
        "width": outcome.width,
        "height": outcome.height,
        "detections": found,
        "timings": {
            "decode_ms": round(timings.decode_ms, 2),
            "letterbox_ms": round(timings.letterbox_ms, 2),
            "run_ms": round(timings.run_ms, 2),
            "postprocess_ms": round(timings.postprocess_ms, 2),
        },
    }


@dataclass(slots=True)
class Exchange:
    """One detect request as it goes: what the meter and the metrics record of it."""

    lang: str
    start: float = field(default_factory=time.perf_counter)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    caller: Caller | None = None
    asked: inputs.Asked | None = None
    loaded: Loaded | None = None
    admitted: bool = False
    found: int = 0
    status: int = 200
    code: str = "ok"


async def detect(request: Request) -> Response:
    service: Service = request.app.state.service
    exchange = Exchange(lang=language(request))
    with translation.override(exchange.lang):
        try:
            return await _respond(service, request, exchange)
        finally:
            caller = exchange.caller
            if exchange.admitted and caller is not None:
                await service.counters.release(caller.organization_id, exchange.request_id)
            _meter(service, request, exchange)


async def _respond(service: Service, request: Request, exchange: Exchange) -> Response:
    """The answer, or the error it came to in the API's error shape."""
    headers: dict[str, str] = {}
    try:
        return JSONResponse(await _answer(service, request, exchange))
    except OverQuota as over:
        error: DefectLabError = _over_quota(over)
        headers = {"Retry-After": str(over.retry_after)}
    except Overloaded as busy:
        error = Unavailable(
            _("The service is busy with this organization's requests: try again shortly."),
            code="overloaded",
        )
        headers = {"Retry-After": str(busy.retry_after)}
    except DefectLabError as refused:
        error = refused
    except ClientDisconnect:  # the caller hung up: nobody to answer, nothing went wrong here
        exchange.status, exchange.code = 499, "client_closed"
        return Response(status_code=499)
    except Exception:
        log.exception("a detection request failed", extra={"request_id": exchange.request_id})
        error = _server_error(exchange.request_id)
    exchange.status, exchange.code = error.status, error.code
    return failure(error, headers)


async def caller_of(request: Request, service: Service, scope: str) -> Caller:
    """Who sends ``request`` (a key with ``scope``), from its headers."""
    # The path as sent (percent-encoded), which is what a signed request signed.
    raw = request.scope.get("raw_path") or request.url.path.encode()
    target = raw.decode("latin-1") + (f"?{request.url.query}" if request.url.query else "")
    return await authenticate(
        request.headers,
        request.method,
        target,
        service.keys,
        service.counters.first_use,
        settings.SIGNATURE_WINDOW_SECONDS,
        scope,
    )


async def _answer(service: Service, request: Request, exchange: Exchange) -> dict[str, Any]:
    """The answer to one detect request, each step in the order the module's text gives."""
    caller = exchange.caller = await caller_of(request, service, Scope.DETECT)
    organization = caller.organization_id
    limits = await service.limits(organization)
    await service.counters.admit(organization, limits, exchange.request_id)
    exchange.admitted = True
    cap = min(
        limits.max_image_bytes * inputs.MAX_IMAGES * 4 // 3 + 65536,
        settings.INFERENCE_MAX_BODY_MB * 1024 * 1024,
    )
    body = await read_body(request, cap)
    check_body(caller, body)
    content_type = request.headers.get("content-type", "")
    # Parsed off the event loop: a large body takes a while, and other callers are waiting.
    asked = exchange.asked = await service.blocking(
        exchange.lang,
        inputs.read,
        content_type,
        body,
        dict(request.query_params),
        limits.max_image_bytes,
    )
    del body
    loaded = service.routes.held(organization, asked.model, asked.alias, asked.version)
    if loaded is None:  # not loaded yet, or its route not known: the database, off the loop
        loaded = await service.blocking(
            exchange.lang,
            service.routes.resolve,
            organization,
            asked.model,
            asked.alias,
            asked.version,
        )
    exchange.loaded = loaded
    # Counted once the model is known to answer: a request refused before costs no images.
    await service.counters.count_images(organization, limits, asked.count)
    images = list(asked.images)
    if asked.urls and service.mirror is not None:
        raise service.mirror.no_urls()
    if asked.urls:
        fetched = await _fetch_urls(
            service, exchange.lang, organization, asked.urls, limits.max_image_bytes
        )
        for (position, _url), data in zip(asked.urls, fetched, strict=True):
            images.insert(position, data)
    conf, iou = service.routes.defaults.get(loaded.version_id, (None, None))
    options = Options(
        conf=asked.conf if asked.conf is not None else conf,
        iou=asked.iou if asked.iou is not None else iou,
        max_det=asked.max_det,
        classes=_class_indices(loaded, asked.classes),
        tile=asked.tile,
    )
    work = Work(loaded, organization, limits.weight, images, options)
    outcomes = await asyncio.wrap_future(service.scheduler.submit(work))
    results = [_result(index, outcome) for index, outcome in enumerate(outcomes)]
    exchange.found = sum(len(result.get("detections", ())) for result in results)
    return {
        "model": {
            "name": loaded.model_name,
            "version": loaded.number,
            "alias": None if asked.version is not None else (asked.alias or "production"),
            "sha256": loaded.sha256,
        },
        "results": results,
        "timings": {
            "queue_ms": round((work.started_at - work.queued_at) * 1000, 2),
            "total_ms": elapsed_ms(exchange.start),
        },
    }


def _over_quota(over: OverQuota) -> Throttled:
    messages = {
        "rate_limited": _("This organization may send %(limit)s requests a minute."),
        "too_many_concurrent": _(
            "This organization may have %(limit)s requests in progress at once."
        ),
        "daily_images": _("This organization may send %(limit)s images a day (UTC)."),
    }
    text = messages[over.code] % {"limit": over.limit}
    return Throttled(
        text + " " + _("Try again in %(seconds)s s.") % {"seconds": over.retry_after},
        code=over.code,
        details={"retry_after": over.retry_after},
    )


def _server_error(request_id: str) -> ServerError:
    return ServerError(
        _("Something went wrong on the server; it is in the service's log as %(id)s.")
        % {"id": request_id}
    )


def _meter(service: Service, request: Request, exchange: Exchange) -> None:
    caller, loaded, asked = exchange.caller, exchange.loaded, exchange.asked
    model = loaded.model_name if loaded else (asked.model[:100] if asked else "")
    service.metrics.answered(
        caller.organization_id if caller else None,
        model if loaded else "",
        exchange.code,
        time.perf_counter() - exchange.start,
        asked.count if asked is not None and exchange.status == 200 else 0,
    )
    if caller is None:
        return  # no organization to charge: counted in the metrics only
    service.meter.add(
        Record(
            organization_id=caller.organization_id,
            key_id=caller.key.pk,
            version_id=loaded.version_id if loaded else None,
            model_name=model,
            version_number=loaded.number if loaded else None,
            endpoint="detect",
            images=asked.count if asked is not None else 0,
            detections=exchange.found,
            latency_ms=elapsed_ms(exchange.start),
            client_ip=client_ip(request),
            status=exchange.status,
            code=exchange.code,
            created_at=now(),
        )
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _database_answers() -> bool:
    close_old_connections()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


async def readyz(request: Request) -> Response:
    service: Service = request.app.state.service
    if service.mirror is not None:  # an edge mirror: its follows, no database
        state = service.mirror.readiness()
        return JSONResponse(state, status_code=200 if state["ready"] else 503)
    database = await service.blocking_default(_database_answers)
    ready = service.ready and database
    # Anyone who reaches the port may ask: counts only, no organization's model names or
    # errors (the log has those, with the organization).
    body = {
        "ready": ready,
        "database": database,
        "models_loaded": len(service.models.held()),
        "alias_problems": len(service.routes.problems),
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    service: Service = request.app.state.service
    if not metrics_allowed(request.headers.get("authorization")):
        with translation.override(language(request)):
            text = metrics_refusal()
        return Response(text, 401, METRICS_CHALLENGE)
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")


async def openapi(request: Request) -> Response:
    return JSONResponse(schema())


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    with translation.override(language(request)):
        message = {404: _("Not found."), 405: _("This method is not allowed here.")}.get(
            status, _("The request cannot be served.")
        )
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "invalid")
    return JSONResponse(error_body(code, message), status_code=status)


def create_app(service: Service | None = None) -> Starlette:
    """The app; ``service`` for tests that hold their own."""
    from defectlab.serving import catalog  # it uses this module's helpers

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        held = service or Service()
        app.state.service = held
        held.start()
        try:
            yield
        finally:
            await held.stop()

    return Starlette(
        routes=[
            Route("/v1/detect", detect, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/openapi.json", openapi),
            # For edge mirrors (serving/catalog.py).
            Route("/v1/models/{name}/aliases/{alias}", catalog.alias),
            Route("/v1/models/{name}/versions/{number:int}/file", catalog.version_file),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
