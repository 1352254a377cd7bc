"""A real installation for benchmarks: `defectlab serve` as a process tree on a loopback port,
an HTTP client with a token, and a sampler of every process's PSS.

Used by bench/memory.py. Nothing here imports Django: the bench's own process stays out of the
measured tree, and the server is started exactly the way an operator starts it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

perf = time.perf_counter
MB = 1024 * 1024  # PSS is reported in MiB, the unit /proc counts in (kB)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def command(*args: str) -> list[str]:
    """The `defectlab` command, run by this interpreter (the venv's)."""
    return [sys.executable, "-m", "defectlab.cli", *args]


# ---------------------------------------------------------------------------- the process tree


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except OSError:
            continue
        found.extend(int(word) for word in text.split())
    return found


def tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    pids, queue = [], [root]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        queue.extend(children(pid))
    return pids


def pss_kb(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


def role_of(pid: int, root: int) -> str:
    if pid == root:
        return "gunicorn master + supervisor"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        name = ""
    if b"worker" in argv or name == "defectlab-jobs":  # run as a command, or forked by serve
        return "job worker"
    return "web worker"


@dataclass
class Sampler:
    """Samples the PSS of every process of the tree every ``interval`` seconds, tagging each
    sample with the current phase."""

    root: int
    interval: float = 0.1
    phase: str = "start"
    samples: list[tuple[float, str, dict[int, int]]] = field(default_factory=list)
    roles: dict[int, str] = field(default_factory=dict)
    first_seen: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def sample(self) -> dict[int, int]:
        taken: dict[int, int] = {}
        for pid in tree(self.root):
            value = pss_kb(pid)
            if value is None:
                continue
            if pid not in self.roles:
                self.roles[pid] = role_of(pid, self.root)
                self.first_seen[pid] = time.monotonic()
            taken[pid] = value
        self.samples.append((time.monotonic(), self.phase, taken))
        return taken

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def last(self) -> dict[int, int]:
        return self.samples[-1][2] if self.samples else {}

    def peaks(self, phase: str) -> tuple[dict[int, int], int]:
        """Per process its peak PSS (kB) in ``phase``, and the peak of the sum."""
        per: dict[int, int] = {}
        total = 0
        for _when, tag, taken in self.samples:
            if tag != phase:
                continue
            for pid, value in taken.items():
                per[pid] = max(per.get(pid, 0), value)
            total = max(total, sum(taken.values()))
        return per, total


class Server:
    """`defectlab serve` on a free loopback port, in its own session (so it and its children
    can be signalled as a group), logging to a file in the data directory."""

    def __init__(self, env: dict[str, str], data_dir: Path, workers: int | None = None) -> None:
        self.env = env
        self.port = free_port()
        self.log_path = data_dir / "serve.log"
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        args = ["serve", "--port", str(self.port)]
        if self.workers:
            args += ["--workers", str(self.workers)]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command(*args), env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"defectlab serve exited: see {self.log_path}")
            try:
                status, _body = Client(self.port).request("GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"defectlab serve did not answer in {timeout} s")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


# ---------------------------------------------------------------------------- HTTP


class Client:
    """One keep-alive connection to the server (one per thread)."""

    def __init__(self, port: int, token: str | None = None, timeout: float = 120.0) -> None:
        self.port = port
        self.token = token
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None
        self.cookies: dict[str, str] = {}

    def _connect(self) -> http.client.HTTPConnection:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=self.timeout
            )
        return self.connection

    def request(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None or method in ("POST", "PUT", "PATCH"):
            headers["Content-Type"] = "application/json"
            headers["Content-Length"] = str(len(data or b""))
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            if "csrftoken" in self.cookies:
                headers["X-CSRFToken"] = self.cookies["csrftoken"]
        for attempt in (1, 2):
            connection = self._connect()
            try:
                connection.request(method, path, body=data, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed a kept-alive connection (a worker recycled): once more.
                self.close()
                if attempt == 2:
                    raise
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _sep, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        kind = response.getheader("Content-Type", "")
        if kind.startswith("application/json") and payload:
            return response.status, json.loads(payload)
        return response.status, payload

    def stream(self, path: str) -> Iterator[bytes]:
        """GET ``path`` and yield its body in 1 MB pieces."""
        connection = self._connect()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        if response.status != 200:
            raise SystemExit(f"GET {path}: {response.status} {response.read()[:300]!r}")
        while piece := response.read(1 << 20):
            yield piece
        self.close()

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]
