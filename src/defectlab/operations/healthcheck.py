"""The container image's HEALTHCHECK: ``python -m defectlab.operations.healthcheck``.

One image runs three roles, so the check first finds which: the ``defectlab`` process in the
container (PID 1 under podman or Docker) and its command. ``serve`` and ``serve-inference`` are
asked for ``/healthz`` on their port (``--port``, else ``DEFECTLAB_PORT`` /
``DEFECTLAB_INFERENCE_PORT``, else the defaults) over loopback, with python's urllib: there is
no curl in the image. A ``worker`` is asked for its probe server's ``/healthz``
(``DEFECTLAB_WORKER_METRICS_PORT``), which fails when its job threads died and not when the
database is away; with that server off (port 0) it is healthy while its heartbeat row
(written every ``DEFECTLAB_WORKER_HEARTBEAT_SECONDS``, see ``jobs.liveness``) is fresh.

Exit 0 healthy, 1 not (what Docker and podman expect); one line says why."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

# role -> (the setting naming its port, the port by default).
PORTS = {
    "serve": ("DEFECTLAB_PORT", 8080),
    "serve-inference": ("DEFECTLAB_INFERENCE_PORT", 8090),
    "worker": ("DEFECTLAB_WORKER_METRICS_PORT", 8081),
}


def defectlab_command(proc: Path = Path("/proc")) -> list[str]:
    """The arguments after ``defectlab`` of the container's defectlab process (PID 1 first)."""
    pids = ["1", *sorted((p.name for p in proc.iterdir() if p.name.isdigit()), key=int)]
    for pid in pids:
        try:
            argv = (proc / pid / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        for index, arg in enumerate(argv):
            if Path(arg).name == "defectlab":
                return [a for a in argv[index + 1 :] if a]
    return []


def port_of(role: str, args: list[str], environ: dict[str, str]) -> int:
    for index, arg in enumerate(args):
        if arg == "--port" and index + 1 < len(args):
            return int(args[index + 1])
        if arg.startswith("--port="):
            return int(arg.partition("=")[2])
    name, default = PORTS[role]
    return int(environ.get(name) or default)


def check_http(port: int, timeout: float = 5.0) -> str | None:
    """None when ``/healthz`` answers 200 on loopback, else why not."""
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            if answer.status == 200:
                return None
            return f"{url} answered {answer.status}"
    except (OSError, urllib.error.URLError) as error:
        return f"{url}: {error}"


def check_worker() -> str | None:
    """None when a job worker of this container wrote its heartbeat lately, else why not."""
    import socket

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "defectlab.settings")
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()
    from defectlab.jobs.liveness import worker_problem

    return worker_problem(host=socket.gethostname())


def main() -> int:
    args = defectlab_command()
    role = args[0] if args else ""
    try:
        port = port_of(role, args, dict(os.environ)) if role in PORTS else None
        if port:
            problem = check_http(port)
        elif role == "worker":  # its probe server is off
            problem = check_worker()
        else:
            problem = f"no defectlab serve, serve-inference or worker runs here ({role or 'none'})"
    except Exception as error:  # any failure is an unhealthy answer, said in one line
        problem = f"{type(error).__name__}: {error}"
    print(problem or f"{role}: healthy")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
