"""The compose stack (deploy/compose.yaml, .env.example, nginx, MinIO's init) parses and
agrees with the code: every variable is explained and every DEFECTLAB_* one is a setting, the
commands exist, ports and health checks are the app's, nginx takes the app's largest bodies and
both networks' names, and MinIO's policy allows exactly what the storage code does."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import click
import pytest
import yaml
from django.urls import resolve, reverse

from defectlab.cli import main
from defectlab.config import csv_list, endpoint_map
from defectlab.settings import SETTINGS
from tests.deploy.kube import largest_body_mb

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_TEXT = (DEPLOY / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = (DEPLOY / ".env.example").read_text()
NGINX = (DEPLOY / "nginx" / "defectlab.conf").read_text()
APP_LOCATIONS = (DEPLOY / "nginx" / "app-locations.conf").read_text()
STORAGE_LOCATIONS = (DEPLOY / "nginx" / "storage-locations.conf").read_text()
ROLES = {"web": "serve", "worker": "worker", "inference": "serve-inference"}
# compose's interpolation: ${NAME}, ${NAME:-default}, ${NAME:?message}; $$ is a literal $.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(?::?([-?])([^}]*))?\}")


def example_values() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.splitlines():
        if line and not line.startswith("#"):
            name, equals, value = line.partition("=")
            assert equals, f".env.example: {line!r} is not NAME=value"
            values[name] = value
    return values


def interpolate(text: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, kind, default = match.groups()
        value = values.get(name, "")
        return default if kind == "-" and not value else value

    return VARIABLE.sub(one, text)


def environment(service: str) -> dict[str, str]:
    """A service's environment as compose hands it over with .env.example's values."""
    rendered = yaml.safe_load(interpolate(COMPOSE_TEXT, example_values()))
    return {
        name: str(value) for name, value in rendered["services"][service]["environment"].items()
    }


def test_every_variable_the_compose_file_uses_is_in_env_example_with_an_explanation() -> None:
    used = {match.group(1) for match in VARIABLE.finditer(COMPOSE_TEXT)}
    values = example_values()
    assert used - set(values) == set(), "add to deploy/.env.example"
    assert set(values) - used == set(), "deploy/.env.example lists variables compose never uses"
    # Each variable sits in a block of lines (between blank lines) that has a comment.
    for block in ENV_EXAMPLE.split("\n\n"):
        rows = block.strip().splitlines()
        names = [row.split("=")[0] for row in rows if not row.startswith("#")]
        if names:
            assert any(row.startswith("# ") for row in rows), f"explain {names}"


def test_no_secret_is_written_in_the_compose_file() -> None:
    values = example_values()
    secret = re.compile(r"PASSWORD|SECRET")
    for name in values:
        if secret.search(name) and name != "MINIO_ROOT_USER":
            assert values[name] == "", f".env.example must leave {name} empty"
    for service in SERVICES.values():
        for name, value in (service.get("environment") or {}).items():
            if secret.search(name):
                assert "${" in str(value), f"{name} must come from .env"
    assert "minioadmin:" not in COMPOSE_TEXT


def test_every_defectlab_variable_is_a_documented_setting() -> None:
    names = set(re.findall(r"\bDEFECTLAB_[A-Z0-9_]+", COMPOSE_TEXT + ENV_EXAMPLE))
    assert names
    assert not names - set(SETTINGS), f"not settings: {sorted(names - set(SETTINGS))}"


def test_the_three_roles_run_real_commands_of_one_image() -> None:
    commands = main.list_commands(click.Context(main))
    images = set()
    for role, command in ROLES.items():
        assert SERVICES[role]["command"] == [command]
        assert command in commands
        images.add(SERVICES[role]["image"])
    assert len(images) == 1


def _health_url(service: str) -> str:
    test = " ".join(SERVICES[service]["healthcheck"]["test"])
    found = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", test)
    assert found, f"{service}: the health check asks no URL"
    return found.group(0)


def test_each_role_listens_where_its_health_check_and_nginx_look() -> None:
    web, inference, worker = (environment(role) for role in ("web", "inference", "worker"))
    assert web["DEFECTLAB_HOST"] == inference["DEFECTLAB_INFERENCE_HOST"] == "0.0.0.0"
    assert worker["DEFECTLAB_WORKER_METRICS_HOST"] == "0.0.0.0"
    web_port = web["DEFECTLAB_PORT"]
    inference_port = inference["DEFECTLAB_INFERENCE_PORT"]
    assert web_port == SETTINGS["DEFECTLAB_PORT"].default
    assert inference_port == SETTINGS["DEFECTLAB_INFERENCE_PORT"].default
    worker_port = worker.get(
        "DEFECTLAB_WORKER_METRICS_PORT", SETTINGS["DEFECTLAB_WORKER_METRICS_PORT"].default
    )
    assert _health_url("web") == f"http://127.0.0.1:{web_port}/readyz"
    assert _health_url("inference") == f"http://127.0.0.1:{inference_port}/readyz"
    assert _health_url("worker") == f"http://127.0.0.1:{worker_port}/healthz"
    for role, port in (("web", web_port), ("inference", inference_port), ("worker", worker_port)):
        assert SERVICES[role]["expose"] == [port]
    assert f"server web:{web_port};" in NGINX
    assert f"server inference:{inference_port};" in NGINX
    assert resolve("/readyz").url_name == "readyz"


def test_services_start_after_what_they_need_is_healthy() -> None:
    for name, service in SERVICES.items():
        for needed, condition in (service.get("depends_on") or {}).items():
            wanted = condition["condition"]
            if wanted == "service_healthy":
                assert "healthcheck" in SERVICES[needed], f"{name} waits for {needed}'s health"
            else:
                assert wanted == "service_completed_successfully"
    for role in ROLES:
        needs = SERVICES[role]["depends_on"]
        assert {"postgres", "rabbitmq", "redis"} <= set(needs)
    # The web role migrates at start: the others wait for it.
    assert SERVICES["worker"]["depends_on"]["web"]["condition"] == "service_healthy"
    assert SERVICES["inference"]["depends_on"]["web"]["condition"] == "service_healthy"
    assert SERVICES["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert "restart" not in SERVICES["minio-init"]


def test_the_roles_share_the_queue_database_and_redis_and_log_json_to_stdout() -> None:
    for role in ROLES:
        env = environment(role)
        assert env["DEFECTLAB_DATABASE_URL"].startswith("postgresql://")
        assert env["DEFECTLAB_BROKER_URL"].startswith("amqp://")
        assert env["DEFECTLAB_REDIS_URL"].startswith("redis://")
        assert env["DEFECTLAB_WORKER_EMBEDDED"] == "false"
        assert env["DEFECTLAB_LOG_FORMAT"] == "json"
        assert SERVICES[role]["read_only"] is True
        assert SERVICES[role]["cap_drop"] == ["ALL"]
        assert "logging" not in SERVICES[role]


def test_postgres_takes_more_connections_than_the_pools_hold() -> None:
    values = example_values()
    web = int(values["DEFECTLAB_WEB_WORKERS"]) * 4  # gunicorn threads a process (cli.serve)
    worker = int(values["DEFECTLAB_WORKER_THREADS"]) + 1  # and its heartbeat
    from defectlab.serving.app import BLOCKING_THREADS

    assert int(values["POSTGRES_MAX_CONNECTIONS"]) >= 2 * (web + worker + BLOCKING_THREADS)
    assert "max_connections=${POSTGRES_MAX_CONNECTIONS" in COMPOSE_TEXT


def test_both_networks_names_reach_the_app_and_sign_media_for_their_own_storage_host() -> None:
    values = example_values()
    env = environment("web")
    assert env["DEFECTLAB_PROXY_HEADERS"] == "true"
    public = csv_list(env["DEFECTLAB_PUBLIC_URLS"])
    endpoints = endpoint_map(env["DEFECTLAB_S3_PUBLIC_ENDPOINTS"])
    assert public == [f"http://{values['LAN_HOST']}", f"https://{values['WAN_HOST']}"]
    assert endpoints == {
        values["LAN_HOST"]: f"http://{values['LAN_STORAGE_HOST']}",
        values["WAN_HOST"]: f"https://{values['WAN_STORAGE_HOST']}",
    }
    nginx = interpolate(NGINX, values)
    servers = re.findall(r"server \{(.*?)\n\}", nginx, re.S)

    def server(listen: str, name: str) -> str:
        (found,) = [
            s
            for s in servers
            if f"listen {listen}" in s and re.search(rf"server_name [^;]*\b{re.escape(name)}\b", s)
        ]
        return found

    assert "app-locations.conf" in server("80;", values["LAN_HOST"])
    assert "app-locations.conf" in server("443 ssl;", values["WAN_HOST"])
    assert "storage-locations.conf" in server("80;", values["LAN_STORAGE_HOST"])
    assert "storage-locations.conf" in server("443 ssl;", values["WAN_STORAGE_HOST"])
    # Every ${…} of the template is given to nginx.
    given = set(SERVICES["nginx"]["environment"])
    template = {match.group(1) for match in VARIABLE.finditer(NGINX)}
    assert template and template <= given


def _location(text: str, opening: str) -> str:
    start = text.index(f"location {opening} {{")
    return text[start : text.index("}", start)]


def test_nginx_takes_the_largest_body_the_app_takes_and_no_more() -> None:
    largest = largest_body_mb()
    assert re.search(rf"^client_max_body_size {largest + 1}m;", APP_LOCATIONS, re.M)
    detect = SETTINGS["DEFECTLAB_INFERENCE_MAX_BODY_MB"].default
    assert f"client_max_body_size {detect}m;" in _location(APP_LOCATIONS, "/v1/")


def test_nginx_forwards_who_asked_and_streams_exports_and_images() -> None:
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in APP_LOCATIONS
    assert "proxy_set_header X-Forwarded-Host $http_host;" in APP_LOCATIONS
    # The app trusts the first address of the list (tenancy.services): nginx, at the edge,
    # must send the client's own rather than append to what the client sent.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in APP_LOCATIONS
    download = _location(APP_LOCATIONS, r"~ ^/api/jobs/[0-9]+/download/$")
    assert "proxy_buffering off;" in download
    assert re.fullmatch(r"/api/jobs/[0-9]+/download/", reverse("job-download", args=[12]))
    assert "proxy_buffering off;" in _location(APP_LOCATIONS, "/media/")
    assert reverse("media", args=["token"]).startswith("/media/")
    # Presigned links sign the host: MinIO must see the one the browser used.
    assert "proxy_set_header Host $http_host;" in STORAGE_LOCATIONS
    assert "proxy_buffering off;" in STORAGE_LOCATIONS


def test_metrics_are_not_reachable_through_nginx() -> None:
    assert "return 404;" in _location(APP_LOCATIONS, "= /metrics")
    assert "/metrics" not in STORAGE_LOCATIONS
    published = {name for name, service in SERVICES.items() if "ports" in service}
    assert published == {"nginx"}, "only nginx is reachable from outside"


# boto3 calls of defectlab.media → the S3 permission each needs.
S3_ACTIONS = {
    "list_objects_v2": {"s3:ListBucket"},
    "head_bucket": {"s3:ListBucket"},
    "get_object": {"s3:GetObject"},
    "head_object": {"s3:GetObject"},
    "put_object": {"s3:PutObject"},
    "delete_object": {"s3:DeleteObject"},
    # in parts above DEFECTLAB_S3_MULTIPART_MB; s3transfer aborts a failed one
    "upload_fileobj": {"s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"},
    "generate_presigned_url": {"s3:GetObject"},
}


def test_the_minio_policy_allows_what_the_storage_code_does_and_nothing_more() -> None:
    calls: set[str] = set()
    for path in (ROOT / "src" / "defectlab" / "media").glob("*.py"):
        text = path.read_text()
        calls |= set(re.findall(r"client\.(\w+)\(", text)) - {"close", "get_paginator"}
        calls |= set(re.findall(r"get_paginator\(\"(\w+)\"\)", text))
        calls |= set(re.findall(r"\.(generate_presigned_url)\(", text))
    unknown = calls - set(S3_ACTIONS)
    assert not unknown, (
        f"new S3 calls in defectlab.media: add them here and to the policy: {unknown}"
    )
    needed = set().union(*(S3_ACTIONS[call] for call in calls))
    policy = json.loads((DEPLOY / "minio" / "policy.json").read_text())
    allowed: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for resource in statement["Resource"]:
            allowed.setdefault(resource, set()).update(statement["Action"])
    assert set(allowed) == {"arn:aws:s3:::BUCKET", "arn:aws:s3:::BUCKET/*"}, "its bucket only"
    assert set().union(*allowed.values()) == needed
    assert allowed["arn:aws:s3:::BUCKET"] == {"s3:ListBucket"}
    init = (DEPLOY / "minio" / "init.sh").read_text()
    assert "s/BUCKET/$MINIO_APP_BUCKET/g" in init
    assert "mc admin policy attach local defectlab-app --user" in init


def test_compose_files_mounted_exist() -> None:
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.get("source", "") if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), source


@pytest.mark.parametrize("role", sorted(ROLES))
def test_processes_log_to_stdout_not_files(role: str) -> None:
    assert not any(str(v).startswith("/var/log") for v in SERVICES[role].get("volumes", []))
    assert environment(role)["DEFECTLAB_DATA_DIR"] == "/data"
    assert "data:/data" in SERVICES[role]["volumes"]


NGINX_MISSING = pytest.mark.skipif(
    not (shutil.which("nginx") and shutil.which("openssl")) and not os.environ.get("CI"),
    reason="nginx or openssl missing (`make nginx`; CI always runs it)",
)


def nginx_config(tmp_path: Path, lan_cidrs: str | None = None, port: int = 80) -> Path:
    """The site as nginx's image fills the template and compose's entrypoint writes the LAN's
    allow list (lan-clients.sh), with the upstreams on loopback (the compose names do not
    resolve here), ``port`` for 80, and `http2 on;` left out for nginx older than 1.25."""
    tls = tmp_path / "tls"
    tls.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=defectlab", "-keyout", str(tls / "privkey.pem"), "-out", str(tls / "fullchain.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    env = {"PATH": os.environ["PATH"]} | ({"LAN_CIDRS": lan_cidrs} if lan_cidrs else {})
    subprocess.run(
        ["sh", str(DEPLOY / "nginx" / "lan-clients.sh"), str(tmp_path / "lan-clients.conf")],
        env=env, check=True,
    )  # fmt: skip
    site = interpolate(NGINX, example_values())
    site = re.sub(r"server (web|inference|minio):\d+", f"server 127.0.0.1:{closed_port()}", site)
    site = site.replace("http2 on;", "").replace("/etc/nginx/tls/", f"{tls}/")
    site = site.replace("/etc/nginx/defectlab/", f"{tmp_path}/")
    site = site.replace("/etc/nginx/lan-clients.conf", f"{tmp_path}/lan-clients.conf")
    site = re.sub(r"listen 80\b", f"listen 127.0.0.1:{port}", site)
    site = re.sub(r"listen 443\b", f"listen 127.0.0.1:{closed_port()}", site)
    (tmp_path / "app-locations.conf").write_text(APP_LOCATIONS)
    (tmp_path / "storage-locations.conf").write_text(STORAGE_LOCATIONS)
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n"
    )
    return tmp_path / "nginx.conf"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@NGINX_MISSING
def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    config = nginx_config(tmp_path)
    allowed = (tmp_path / "lan-clients.conf").read_text().splitlines()[1:]
    assert allowed == [
        "allow 10.0.0.0/8;",
        "allow 172.16.0.0/12;",
        "allow 192.168.0.0/16;",
        "allow fc00::/7;",
        "deny all;",
    ]  # the private ranges unless LAN_CIDRS says otherwise
    result = subprocess.run(
        ["nginx", "-t", "-c", str(config), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_lan_allow_list_refuses_what_is_not_an_address(tmp_path: Path) -> None:
    for bad in ("10.0.0.0/8;deny", "all", "10.0.0.0/8/8", "10.0.0.0/8,$(id)"):
        result = subprocess.run(
            ["sh", str(DEPLOY / "nginx" / "lan-clients.sh"), str(tmp_path / "out.conf")],
            env={"PATH": os.environ["PATH"], "LAN_CIDRS": bad}, capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 1 and "LAN_CIDRS" in result.stderr, bad
        assert not (tmp_path / "out.conf").exists()


@NGINX_MISSING
@pytest.mark.parametrize(("lan_cidrs", "expected"), [("10.0.0.0/8", 403), ("127.0.0.0/8", 502)])
def test_the_lan_names_answer_only_clients_of_the_lan(
    tmp_path: Path, lan_cidrs: str, expected: int
) -> None:
    """A client outside LAN_CIDRS naming the LAN host over http (the internet, through the
    public address) is refused; one inside reaches the app (here: no app, so 502)."""
    port = closed_port()
    config = nginx_config(tmp_path, lan_cidrs, port)
    server = subprocess.Popen(
        ["nginx", "-c", str(config), "-p", str(tmp_path), "-g", "daemon off;"]
    )
    try:
        values = example_values()
        for host in (values["LAN_HOST"], values["LAN_STORAGE_HOST"]):
            assert http_status(port, host) == expected, host
        assert http_status(port, values["WAN_HOST"]) == 308  # to https, for everyone
    finally:
        server.terminate()
        server.wait(30)


def http_status(port: int, host: str) -> int:
    deadline = time.monotonic() + 30
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/", headers={"Host": host})
            return connection.getresponse().status
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            connection.close()
