"""The job worker's own small HTTP server, on DEFECTLAB_WORKER_METRICS_HOST and
DEFECTLAB_WORKER_METRICS_PORT (0: none), for its orchestrator and Prometheus:

- `/healthz`: the process is alive and its job worker's threads are too (a liveness probe: 503
  when one died, so the orchestrator restarts it; never for the database being away, which a
  restart would not mend).
- `/readyz`: the database answers, and this process's job worker is running: its threads alive
  and its heartbeat written within three heartbeat intervals (`defectlab.jobs.worker`).
- `/metrics`: the jobs this process ran (by kind and outcome), their durations, those running
  now, and the database's job, queue and task gauges (`defectlab.operations.metrics`).

`defectlab worker` runs it around its loop. The job worker `defectlab serve` forks has none:
the web's `/metrics` and `/readyz` already cover it (they share its metrics files and see its
heartbeat)."""

from __future__ import annotations

import json
import logging
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from django.db import DatabaseError, close_old_connections, connection, connections

from defectlab.jobs.worker import loop_problem, run_worker, threads_problem
from defectlab.operations import metrics

log = logging.getLogger(__name__)


def readiness() -> tuple[int, dict[str, Any]]:
    """The worker's `/readyz` answer: its status code and body."""
    close_old_connections()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return 503, {"status": "unavailable", "database": "unreachable"}
    problem = loop_problem()
    if problem is not None:
        return 503, {"status": "unavailable", "worker": problem}
    return 200, {"status": "ok"}


class ProbeHandler(BaseHTTPRequestHandler):
    server_version = "defectlab-worker"
    timeout = 5.0  # seconds a connection may stay silent before it is dropped

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(getattr(self.server, "handler_timeout", self.timeout))

    def do_GET(self) -> None:
        try:
            self._answer(urlsplit(self.path).path)
        finally:
            connections.close_all()  # this request's thread's own connections

    def _answer(self, path: str) -> None:
        if path == "/healthz":
            problem = threads_problem()
            if problem is None:
                self._json(200, {"status": "ok"})
            else:
                self._json(503, {"status": "unavailable", "worker": problem})
        elif path == "/readyz":
            self._json(*readiness())
        elif path == "/metrics":
            if not metrics.allowed(self.headers.get("Authorization")):
                self._send(401, metrics.refusal().encode(), "text/plain", metrics.CHALLENGE)
                return
            self._send(200, metrics.render(), metrics.CONTENT_TYPE)
        else:
            self._json(404, {"status": "not found"})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes come every few seconds: not one log line each."""


class ProbeServer(ThreadingHTTPServer):
    """At most ``max_connections`` connections handled at once, each dropped after
    ``handler_timeout`` seconds of silence: more wait in the listen queue, so a flood of idle
    connections costs neither threads without bound nor the probes for long."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        handler_timeout: float = 5.0,
        max_connections: int = 16,
    ) -> None:
        self.handler_timeout = handler_timeout
        self.slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.slots.acquire()  # the accept loop waits here while every slot is taken
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def server_bind(self) -> None:
        """As HTTPServer's, without its reverse DNS lookup of the address (which can hang where
        no resolver answers, as in many containers)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


@contextmanager
def worker_probes(host: str, port: int) -> Iterator[ProbeServer | None]:
    """Serve the worker's probes on ``host``:``port`` while the block runs (port 0: none). A port
    already taken is said in the log and the worker runs without them (its orchestrator's probes
    then fail, which shows it)."""
    if not port:
        yield None
        return
    try:
        server = ProbeServer((host, port), ProbeHandler)
    except OSError as error:
        log.error(
            "worker: cannot serve /healthz, /readyz and /metrics on %s:%s: %s "
            "(DEFECTLAB_WORKER_METRICS_PORT; 0 turns them off)", host, port, error,
            extra={"event": "worker_probes_failed"},
        )  # fmt: skip
        yield None
        return
    thread = threading.Thread(target=server.serve_forever, name="worker-probes", daemon=True)
    thread.start()
    log.info("worker: /healthz, /readyz and /metrics on http://%s:%s/", host, server.server_port)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def run_probed_worker(threads: int) -> bool:
    """`defectlab worker`: the job worker (`run_worker`) with its probes around it."""
    from django.conf import settings

    with worker_probes(settings.WORKER_METRICS_HOST, settings.WORKER_METRICS_PORT):
        return run_worker(threads, max_memory_mb=settings.WORKER_MAX_MEMORY_MB)
