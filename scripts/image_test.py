"""`make image-test`: the container image, really run.

Runs web (`serve`), worker and inference (`serve-inference`) containers of one image against the
machine's PostgreSQL (a database of its own, dropped and made again), RabbitMQ and Redis, on
the host's network, with a read-only root filesystem and a data volume (two web replicas at once, so both migrate
at start on an empty database); waits for each health
check (/healthz, then /readyz, then the image's own HEALTHCHECK); labels one image through the
REST API (account, token, organization, project, label, upload, annotation) and exports it
through the worker; runs one detection through the inference container with an organization
key; checks that every process runs as the image's user, not root, and that everything the
roles log JSON lines on stdout (and nothing but JSON on stderr); prints the image's size. Containers, database, queue and
data directory are removed however it ends. Exit 0 only when every check passed.

    python scripts/image_test.py --image localhost/defectlab:latest
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

PODMAN = "podman --runtime runc --cgroup-manager cgroupfs --storage-driver vfs"
USER_ID = 10001  # the image's user (deploy/Dockerfile)
STARTUP_SECONDS = 240  # how long a container may take to answer (vfs, two cores)


class Failure(Exception):
    """A check that did not pass: its message says which and why."""


def step(message: str) -> None:
    print(f"[image-test {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Podman:
    def __init__(self, command: str) -> None:
        self.command = shlex.split(command)

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        done = subprocess.run(
            [*self.command, *args], capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise Failure(f"podman {' '.join(args[:3])} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout.strip()

    def succeeds(self, *args: str) -> bool:
        done = subprocess.run([*self.command, *args], capture_output=True, timeout=120)
        return done.returncode == 0

    def streams(self, *args: str) -> tuple[str, str]:
        done = subprocess.run([*self.command, *args], capture_output=True, text=True, timeout=60)
        return done.stdout, done.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ulimits() -> list[str]:
    """Explicit limits: podman's defaults ask for more than this machine's hard limit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]


# ---------------------------------------------------------------- HTTP


class Http:
    """A small client for the web app: cookies (the session), CSRF, JSON, a bearer token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.token = ""

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "",
        expect: tuple[int, ...] = (200, 201),
    ) -> Any:
        headers = {"Accept": "application/json"}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        csrf = next((c.value for c in self.cookies if c.name == "csrftoken"), None)
        if csrf and not self.token:
            headers["X-CSRFToken"] = csrf
        url = path if path.startswith("http") else self.base + path
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=120) as answer:
                status, payload, kind = answer.status, answer.read(), answer.headers["Content-Type"]
        except urllib.error.HTTPError as error:
            status, payload, kind = error.code, error.read(), error.headers["Content-Type"]
        if status not in expect:
            raise Failure(f"{method} {path} answered {status}: {payload[:500]!r}")
        if kind and kind.startswith("application/json"):
            return json.loads(payload)
        return payload


def wait_for(what: str, probe: Callable[[], bool], alive: Callable[[], None]) -> float:
    """Poll ``probe`` until it holds; ``alive`` raises if the container has stopped."""
    started = time.monotonic()
    while time.monotonic() - started < STARTUP_SECONDS:
        alive()
        try:
            if probe():
                return time.monotonic() - started
        except (OSError, Failure):
            pass
        time.sleep(1)
    raise Failure(f"{what}: not so after {STARTUP_SECONDS} s")


def answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return bool(answer.status == 200)
    except urllib.error.HTTPError:
        return False


def multipart(field: str, name: str, content: bytes, kind: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: {kind}\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


# ---------------------------------------------------------------- the run


class ImageTest:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.podman = Podman(args.podman)
        self.run_id = uuid.uuid4().hex[:8]
        self.database = args.database
        self.queue = f"image-test-{self.run_id}"
        self.web_port, self.inference_port = free_port(), free_port()
        self.worker_port = free_port()  # the worker's probe server (/healthz, /readyz, /metrics)
        self.containers: dict[str, str] = {}
        self.data_dir = Path(tempfile.mkdtemp(prefix="defectlab-image-test-"))
        self.password = uuid.uuid4().hex
        self.secret_key = uuid.uuid4().hex * 2
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------ setup and teardown

    def admin_url(self) -> str:
        return self.args.postgres.rsplit("/", 1)[0] + "/postgres"

    def make_database(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{self.database}"')

    def environment(self) -> dict[str, str]:
        database_url = self.args.postgres.rsplit("/", 1)[0] + f"/{self.database}"
        return {
            "DEFECTLAB_DATABASE_URL": database_url,
            "DEFECTLAB_BROKER_URL": self.args.broker,
            "DEFECTLAB_JOB_QUEUE": self.queue,
            "DEFECTLAB_REDIS_URL": self.args.redis,
            "DEFECTLAB_SECRET_KEY": self.secret_key,  # the same in every container
            "DEFECTLAB_WORKER_EMBEDDED": "false",
            "DEFECTLAB_PORT": str(self.web_port),
            "DEFECTLAB_INFERENCE_PORT": str(self.inference_port),
            "DEFECTLAB_WORKER_METRICS_PORT": str(self.worker_port),
            "DEFECTLAB_PUBLIC_URLS": f"http://127.0.0.1:{self.web_port}",
            "DEFECTLAB_ADMIN_EMAIL": "owner@example.com",
            "DEFECTLAB_ADMIN_PASSWORD": self.password,
            "DEFECTLAB_WEB_WORKERS": "1",
        }

    def start(self, role: str, command: str, port: int | None = None, *, now: bool = True) -> None:
        name = f"defectlab-image-test-{role}-{self.run_id}"
        environment = self.environment() | ({"DEFECTLAB_PORT": str(port)} if port else {})
        options = [f"--env={key}={value}" for key, value in environment.items()]
        # A worker that outgrew its memory limit exits 75 to be started again: the restart
        # policy does that, as Kubernetes and compose do.
        self.podman(
            "create", "--pull", "never", "--name", name, "--network", "host", "--read-only",
            "--restart", "on-failure",
            "--log-driver", "k8s-file", *ulimits(),
            "--volume", f"{self.data_dir}:/data", *options, self.args.image, command,
        )  # fmt: skip
        self.containers[role] = name
        if now:
            self.podman("start", name)

    def state(self, container: str) -> str:
        return self.podman("inspect", "--format", "{{.State.Status}}", container)

    def alive(self, role: str) -> Callable[[], None]:
        def check() -> None:
            state = self.podman("inspect", "--format", "{{.State.Status}}", self.containers[role])
            if state != "running":
                logs = "\n".join(self.podman.streams("logs", "--tail", "40", self.containers[role]))
                raise Failure(f"the {role} container is {state}; its last lines:\n{logs}")

        return check

    def clean_up(self) -> None:
        for name in self.containers.values():
            self.podman("rm", "--force", "--time", "10", name, check=False)
        try:
            import psycopg

            with psycopg.connect(self.admin_url(), autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        except Exception as error:  # a cleanup problem is said, never hides the result
            print(f"could not drop the database {self.database}: {error}", file=sys.stderr)
        self.delete_queue()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def delete_queue(self) -> None:
        try:
            import pika

            connection = pika.BlockingConnection(pika.URLParameters(self.args.broker))
            channel = connection.channel()
            for queue in (self.queue, f"{self.queue}.DQ", f"{self.queue}.XQ"):
                channel.queue_delete(queue)
            connection.close()
        except Exception as error:
            print(f"could not delete the queue {self.queue}: {error}", file=sys.stderr)

    # ------------------------------------------------------------ the checks

    def wait_healthy(self, role: str, port: int | None) -> None:
        alive = self.alive(role)
        if port is not None:
            base = f"http://127.0.0.1:{port}"
            took = wait_for(f"{role} /healthz", lambda: answers_200(f"{base}/healthz"), alive)
            step(f"{role}: /healthz answers 200 after {took:.0f} s")
            wait_for(f"{role} /readyz", lambda: answers_200(f"{base}/readyz"), alive)
            step(f"{role}: /readyz answers 200")
        container = self.containers[role]
        took = wait_for(
            f"{role}: the image's HEALTHCHECK",
            lambda: self.podman.succeeds("healthcheck", "run", container),
            alive,
        )
        step(f"{role}: the image's HEALTHCHECK says healthy ({took:.0f} s)")

    def migrated_once(self) -> None:
        """One web replica applied the migrations; the other waited and found none to apply."""
        said = {
            role: "".join(self.podman.streams("logs", self.containers[role]))
            for role in ("web", "web-2")
        }
        applied = [role for role, logs in said.items() if '"Applying ' in logs]
        waited = [role for role, logs in said.items() if "No migrations to apply" in logs]
        if len(applied) != 1 or len(waited) != 1:
            raise Failure(
                f"both web replicas migrated, or neither: applied {applied}, none to apply {waited}"
            )
        from datetime import datetime

        last = [json.loads(line) for line in said[applied[0]].splitlines() if '"Applying ' in line][
            -1
        ]
        ended = datetime.fromisoformat(last["time"]).timestamp()
        started = float(self.podman("inspect", "--format", "{{.State.StartedAt.Unix}}", self.containers[waited[0]]))  # fmt: skip
        step(
            f"{applied[0]} applied the migrations; {waited[0]}, started {ended - started:.1f} s "
            "before they ended, found none to apply (the lock)"
        )

    def exec(self, role: str, *command: str) -> str:
        return self.podman("exec", self.containers[role], *command, timeout=600)

    def label_one_image(self) -> None:
        from defectlab.synthetic import defect_image, encode

        web = Http(f"http://127.0.0.1:{self.web_port}")
        self.exec("web", "defectlab", "createadmin")
        web.request("POST", "/api/auth/login/", {"email": "owner@example.com", "password": self.password})  # fmt: skip
        web.token = web.request("POST", "/api/tokens/", {"name": "image-test"})["key"]
        organization = web.request("POST", "/api/organizations/", {"name": "Image test"})["id"]
        project = web.request(
            "POST", "/api/projects/",
            {"organization": organization, "name": "Panels", "labels": [{"name": "scratch"}]},
        )["id"]  # fmt: skip
        label = web.request("GET", f"/api/projects/{project}/labels/")[0]["id"]
        image, defects = next((i, d) for seed in range(20) for i, d in [defect_image(seed)] if d)
        body, kind = multipart("files", "panel.png", encode(image, "PNG"), "image/png")
        web.request("POST", f"/api/projects/{project}/upload/", raw=body, content_type=kind)
        task = web.request("GET", f"/api/projects/{project}/tasks/")["results"][0]
        shown = web.request("GET", task["image_url"])
        if not (isinstance(shown, bytes) and shown[:4] == b"\x89PNG"):
            raise Failure(f"the task's image_url did not answer the image: {shown[:80]!r}")
        x1, y1, x2, y2 = defects[0].box
        saved = web.request(
            "PUT", f"/api/tasks/{task['id']}/annotation/",
            {"version": None, "submit": True, "shapes": [
                {"type": "box", "points": [[x1, y1], [x2, y2]], "label": label}]},
        )  # fmt: skip
        again = web.request("GET", f"/api/tasks/{task['id']}/")
        if saved.get("version") != 1 or again.get("status") != "submitted":
            raise Failure(f"the annotation did not land: {saved} / task {again}")
        step(f"labeled task {task['id']} of project {project}: version 1, submitted")
        canvas = web.request("GET", "/static/defectlab/canvas.js")  # collected at start into /data
        if not canvas:
            raise Failure("the static files were not served (collectstatic at start)")
        job = web.request("POST", f"/api/projects/{project}/export/", {"format": "yolo"}, expect=(202,))  # fmt: skip
        job = web.request("GET", f"/api/jobs/{job['id']}/?wait=60")
        if job.get("state") != "succeeded":
            raise Failure(f"the worker did not run the export job: {job}")
        step(f"the worker container ran export job {job['id']} from RabbitMQ: succeeded")
        self.web = web

    def detect_once(self) -> None:
        from defectlab.synthetic import defect_image, encode

        self.exec("web", "defectlab", "demo", "--images", "2")
        organizations = self.web.request("GET", "/api/organizations/")
        demo = next(o for o in organizations if o["name"] != "Image test")
        model = self.web.request("GET", f"/api/models/?organization={demo['id']}")
        name = (model["results"] if isinstance(model, dict) else model)[0]["name"]
        made = self.exec("web", "defectlab", "key", "create", str(demo["id"]), "image-test")
        key = re.search(r"Its text is (\S+)", made)
        if key is None:
            raise Failure(f"`defectlab key create` printed no key: {made}")
        image, _defects = defect_image(1)
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.inference_port}/v1/detect?model={urllib.parse.quote(name)}",
            data=encode(image),
            headers={"Authorization": f"Bearer {key.group(1)}", "Content-Type": "image/jpeg"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                found = json.loads(answer.read())
        except urllib.error.HTTPError as error:
            raise Failure(f"/v1/detect answered {error.code}: {error.read()[:500]!r}") from None
        result = found["results"][0]
        if "detections" not in result:
            raise Failure(f"/v1/detect answered no detections list: {found}")
        step(
            f"the inference container detected with {found['model']['name']} "
            f"v{found['model']['version']}: {len(result['detections'])} detection(s)"
        )

    def processes_are_not_root(self) -> None:
        for role, container in self.containers.items():
            wait_for(f"{role} running", lambda: self.state(container) == "running", lambda: None)  # noqa: B023
            inside = self.podman("exec", container, "id", "-u")
            pid = int(self.podman("inspect", "--format", "{{.State.Pid}}", container))
            users = {p: uid_of(p) for p in descendants(pid)}
            if inside == "0" or any(uid in (None, 0) for uid in users.values()):
                raise Failure(f"{role}: runs as root (id -u {inside}; processes {users})")
            if set(users.values()) != {USER_ID}:
                raise Failure(f"{role}: processes run as {users}, not the image's user {USER_ID}")
            restarts = self.podman("inspect", "--format", "{{.RestartCount}}", container)
            step(
                f"{role}: {len(users)} process(es), all uid {USER_ID}; `id -u` inside: {inside}; "
                f"restarted {restarts} time(s)"
            )

    def logs_are_json(self) -> None:
        for role, container in self.containers.items():
            stdout, stderr = self.podman.streams("logs", container)
            lines = [line for line in (stdout + stderr).splitlines() if line.strip()]
            if not stdout.strip():
                raise Failure(f"{role}: nothing logged on stdout (stderr: {stderr[-300:]!r})")
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    raise Failure(f"{role}: a log line is not JSON: {line[:300]}") from None
                if not isinstance(entry, dict) or not {"level", "message"} <= set(entry):
                    raise Failure(f"{role}: a log line is not a log entry: {line[:300]}")
            step(
                f"{role}: {len(lines)} log lines ({len(stdout.splitlines())} on stdout, "
                f"{len(stderr.splitlines())} on stderr), every one a JSON object"
            )

    def run(self) -> None:
        step(f"database {self.database}, queue {self.queue}, data {self.data_dir}")
        self.make_database()
        os.chown(self.data_dir, USER_ID, USER_ID)
        started = time.monotonic()
        # Two web replicas start together on the empty database: they migrate in turns.
        second_port = free_port()
        self.start("web", "serve", now=False)
        self.start("web-2", "serve", port=second_port, now=False)
        self.podman("start", self.containers["web"], self.containers["web-2"])
        self.wait_healthy("web", self.web_port)
        self.wait_healthy("web-2", second_port)
        self.migrated_once()
        self.start("worker", "worker")
        self.start("inference", "serve-inference")
        self.wait_healthy("inference", self.inference_port)
        self.wait_healthy("worker", self.worker_port)
        self.timings["start"] = time.monotonic() - started
        self.label_one_image()
        self.detect_once()
        self.processes_are_not_root()
        self.logs_are_json()


def descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            queue.extend(int(child) for child in task.read_text().split())
    return found


def uid_of(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def image_size(podman: Podman, image: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="localhost/defectlab:latest")
    parser.add_argument("--podman", default=os.environ.get("PODMAN", PODMAN))
    parser.add_argument("--database", default="image_test")
    parser.add_argument("--postgres", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--max-size-mb", type=int, default=700)
    args = parser.parse_args()
    test = ImageTest(args)
    started = time.monotonic()
    try:
        test.run()
        size = image_size(test.podman, args.image) / 1e6
        step(f"the image {args.image} is {size:.0f} MB (the aim: under {args.max_size_mb} MB)")
        if size > args.max_size_mb:
            raise Failure(f"the image is {size:.0f} MB, above {args.max_size_mb} MB")
    except Failure as failure:
        print(f"image-test FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        test.clean_up()
    step(
        f"passed in {time.monotonic() - started:.0f} s "
        f"(containers healthy after {test.timings['start']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
