"""`defectlab check --deploy` against real services on loopback: PostgreSQL or SQLite (the
suite's), RabbitMQ on 5672, Redis on 6379, and closed loopback ports for what is down."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from defectlab.cli import main
from defectlab.operations.checks import key_bits

pytestmark = pytest.mark.django_db

RABBITMQ_URL = os.environ.get(
    "DEFECTLAB_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"
)
REDIS_URL = os.environ.get("DEFECTLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
STRONG_KEY = "q8Zr-1vTn4LmXe0Pw7sYb2Kc9Hd3Jf6Ga5Uo_RiWtQyNzEx"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def deploy_check() -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check", "--deploy"], prog_name="defectlab")
    return result.exit_code, result.output


@pytest.fixture
def production(settings: Any) -> Any:
    """A deployment that passes: every service up, a strong key, https behind a proxy."""
    settings.DEBUG = False
    settings.PROBLEMS = []
    settings.BROKER_URL = RABBITMQ_URL
    settings.REDIS_URL = REDIS_URL
    settings.SECRET_KEY_SETTING = settings.SECRET_KEY = STRONG_KEY
    settings.PUBLIC_URLS = ["https://defects.example.com", "http://10.1.2.3:8080"]
    settings.ALLOWED_HOSTS = ["defects.example.com", "10.1.2.3"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://defects.example.com", "http://10.1.2.3:8080"]
    settings.S3_PUBLIC_ENDPOINTS = {
        "defects.example.com": "https://s3.example.com",
        "10.1.2.3:8080": "http://10.1.2.3:9000",
    }
    settings.PROXY_HEADERS = True
    settings.HSTS_SECONDS = 31536000
    return settings


def test_a_sound_deployment_passes(production: Any) -> None:
    code, output = deploy_check()
    assert code == 0, output
    assert "Configuration is fine for a deployment" in output
    assert "warning" not in output


def test_the_plain_check_does_not_look_at_the_deployment(production: Any) -> None:
    production.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    result = CliRunner().invoke(main, ["check"], prog_name="defectlab")
    assert result.exit_code == 0 and "Redis" not in result.output


def test_an_unreachable_rabbitmq_says_where_and_what_to_check(production: Any) -> None:
    port = closed_port()
    production.BROKER_URL = f"amqp://guest:hunter2@127.0.0.1:{port}/%2F"
    code, output = deploy_check()
    assert code == 1
    assert f"Cannot reach the RabbitMQ broker at amqp://127.0.0.1:{port}" in output
    assert "hunter2" not in output


def test_rabbitmq_with_a_wrong_password_is_a_problem(production: Any) -> None:
    production.BROKER_URL = "amqp://guest:wrong-password@127.0.0.1:5672/%2F"
    code, output = deploy_check()
    assert code == 1 and "Cannot reach the RabbitMQ broker" in output


def test_the_embedded_queue_is_a_warning_only(production: Any) -> None:
    production.BROKER_URL = ""
    code, output = deploy_check()
    assert code == 0 and "warning: Jobs use the embedded queue" in output


def test_an_unreachable_redis_is_a_problem(production: Any) -> None:
    port = closed_port()
    production.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    code, output = deploy_check()
    assert code == 1 and f"Cannot reach Redis at redis://127.0.0.1:{port}" in output


def test_no_redis_is_fine(production: Any) -> None:
    production.REDIS_URL = ""
    assert deploy_check()[0] == 0


def test_an_unwritable_storage_is_a_problem(production: Any, tmp_path: Any) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    production.STORAGE_DIR = blocker / "storage"
    code, output = deploy_check()
    assert code == 1 and "Cannot write, read and delete a file in the storage" in output


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("", "DEFECTLAB_SECRET_KEY is not set"),
        ("test-only-secret-key-0123456789-and-some-more", "placeholder or development key"),
        ("django-insecure-" + "a1b2c3d4" * 6, "placeholder or development key"),
        ("Zq8-short-but-random", "too weak (20 characters"),
        ("ab" * 30, "too weak (60 characters, about 60 bits)"),
    ],
)
def test_a_missing_or_weak_secret_key_is_a_problem(
    production: Any, key: str, expected: str
) -> None:
    production.SECRET_KEY_SETTING = key
    code, output = deploy_check()
    assert code == 1 and expected in output


def test_key_strength_is_estimated_from_the_characters() -> None:
    assert key_bits("a" * 64) == 0
    assert key_bits(STRONG_KEY) > 200


def test_public_urls_for_this_machine_only_are_a_problem(production: Any) -> None:
    production.PUBLIC_URLS = ["http://127.0.0.1:8080", "http://localhost:8080"]
    production.S3_PUBLIC_ENDPOINTS = {}
    code, output = deploy_check()
    assert code == 1 and "DEFECTLAB_PUBLIC_URLS names only this machine" in output


def test_a_public_url_with_a_path_breaks_csrf(production: Any) -> None:
    production.PUBLIC_URLS = ["https://defects.example.com/app", "http://10.1.2.3:8080"]
    code, output = deploy_check()
    assert (
        code == 1
        and "has a path: give only scheme://host[:port] (https://defects.example.com)" in output
    )


def test_origins_and_hosts_must_cover_the_public_urls(production: Any) -> None:
    production.CSRF_TRUSTED_ORIGINS = ["https://defects.example.com"]
    production.ALLOWED_HOSTS = ["defects.example.com"]
    code, output = deploy_check()
    assert code == 1
    assert "http://10.1.2.3:8080 is a public URL but not a CSRF trusted origin" in output
    assert "10.1.2.3 is a public URL's host but not allowed" in output


def test_s3_public_endpoints_must_name_public_addresses(production: Any) -> None:
    production.S3_PUBLIC_ENDPOINTS = {"files.elsewhere.com": "https://s3.example.com"}
    code, output = deploy_check()
    assert code == 1 and "maps files.elsewhere.com, which is not an address" in output


def test_an_https_address_with_an_http_storage_endpoint_is_mixed_content(production: Any) -> None:
    production.S3_PUBLIC_ENDPOINTS = {"defects.example.com": "http://s3.example.com"}
    code, output = deploy_check()
    assert code == 1 and "browsers block http images on https pages" in output


def test_https_settings_are_warnings(production: Any) -> None:
    production.PROXY_HEADERS = False
    production.HSTS_SECONDS = 0
    code, output = deploy_check()
    assert code == 0
    assert "warning: A public URL uses https but DEFECTLAB_PROXY_HEADERS is off" in output
    assert "warning: DEFECTLAB_HSTS_SECONDS is 0" in output
    production.PUBLIC_URLS = ["http://10.1.2.3:8080"]
    production.S3_PUBLIC_ENDPOINTS = {}
    code, output = deploy_check()
    assert code == 0 and "warning: No public URL uses https" in output


def test_debug_is_a_problem(production: Any) -> None:
    production.DEBUG = True
    code, output = deploy_check()
    assert code == 1 and "DEFECTLAB_DEBUG is on" in output


def test_an_unreachable_database_is_a_problem(tmp_path: Any) -> None:
    """A real `defectlab check --deploy` process whose PostgreSQL port is closed."""
    port = closed_port()
    root = Path(__file__).resolve().parents[2]
    environment = {
        **os.environ,
        "DEFECTLAB_DATA_DIR": str(tmp_path),
        "DEFECTLAB_DATABASE_URL": f"postgresql://root:hunter2@127.0.0.1:{port}/defectlab",
        "DJANGO_SETTINGS_MODULE": "defectlab.settings",
        "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "defectlab.cli", "check", "--deploy"],
        env=environment, capture_output=True, text=True, timeout=120, cwd=root,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Cannot reach the database" in done.stderr and str(port) in done.stderr
    assert "hunter2" not in done.stderr
