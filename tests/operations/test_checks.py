"""`defectlab check --deploy` against real services on loopback: PostgreSQL or SQLite (the
suite's), RabbitMQ on 5672, Redis on 6379, and closed loopback ports for what is down."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from defectlab.cli import main
from defectlab.media import storage as storage_module
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
        ("Zq8-sh0rt-r4nd", "too weak (14 characters"),
        ("ab" * 30, "too weak (60 characters, about 0 bits)"),
        ("a" * 64, "too weak (64 characters, about 0 bits)"),
        ("password123" * 4, "too weak (44 characters"),
        ("qwertyuiopasdfghjklzxcvbnm1234567890", "too weak (36 characters, about 0 bits)"),
        ("0123456789abcdef" * 2, "too weak (32 characters, about 0 bits)"),
        ("3a282524781b6e8855f40a74ab86e7", "too weak (30 characters, about 120 bits)"),
    ],
)
def test_a_missing_or_weak_secret_key_is_a_problem(
    production: Any, key: str, expected: str
) -> None:
    production.SECRET_KEY_SETTING = key
    code, output = deploy_check()
    assert code == 1 and expected in output


def test_key_strength_is_estimated_from_the_characters() -> None:
    assert key_bits("ab" * 16) == 128  # hex: 4 bits a character (a pattern: `patterned`)
    assert key_bits("Ab" * 16) == 32 * math.log2(52)
    assert key_bits(STRONG_KEY) > 200


@pytest.mark.parametrize(
    "key",
    [
        "0f3a9c1e7b2d4a6f8e0c2b4d6f8a1c3e",  # `openssl rand -hex 16`: 128 bits
        "0F3A9C1E7B2D4A6F8E0C2B4D6F8A1C3E",
        "q8Zr-1vTn4LmXe0Pw7sYb2Kc9Hd3Jf6G",  # secrets.token_urlsafe(24): 32 characters
        "fb74d696189aab5e05c0db95ff1e5eb0",
        "c793a970569e8aac42b16fed6063a293",
        "c3c4b9166872bda39b1d53a34aa60413",
        "486c65e17fb21ac9c117406b10ab866e",
        "24af6b6d688f6d1c246429612821c575",
        "459f164c720d9f56ddb6f037016a2f30",
    ],
)
def test_a_random_128_bit_key_passes(production: Any, key: str) -> None:
    production.SECRET_KEY_SETTING = key
    code, output = deploy_check()
    assert code == 0 and "DEFECTLAB_SECRET_KEY" not in output, output


OLD_KEY = "0f3a9c1e7b2d4a6f8e0c2b4d6f8a1c3e"


def test_a_strong_fallback_is_a_reminder_only(production: Any) -> None:
    production.SECRET_KEY_FALLBACKS = [OLD_KEY]
    code, output = deploy_check()
    assert code == 0, output
    assert "warning: DEFECTLAB_SECRET_KEY_FALLBACKS holds 1 old key(s)" in output
    assert "`defectlab rotate-secrets`" in output and OLD_KEY not in output


def test_a_fallback_equal_to_the_key_or_given_twice_is_a_warning(production: Any) -> None:
    production.SECRET_KEY_FALLBACKS = [STRONG_KEY, OLD_KEY, OLD_KEY]
    code, output = deploy_check()
    assert code == 0, output
    assert (
        "warning: DEFECTLAB_SECRET_KEY_FALLBACKS (key 1 of 3) is the same as DEFECTLAB_SECRET_KEY"
        in output
    )
    assert "warning: DEFECTLAB_SECRET_KEY_FALLBACKS (key 3 of 3) is given twice" in output
    assert STRONG_KEY not in output


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("test-only-secret-key-0123456789-and-some-more", "is a placeholder or development key"),
        ("Zq8-sh0rt-r4nd", "is too weak (14 characters"),
        ("password123" * 4, "is too weak (44 characters"),
    ],
)
def test_a_placeholder_or_weak_fallback_is_a_problem(
    production: Any, key: str, expected: str
) -> None:
    production.SECRET_KEY_FALLBACKS = [OLD_KEY, key]
    code, output = deploy_check()
    assert code == 1
    assert f"- DEFECTLAB_SECRET_KEY_FALLBACKS (key 2 of 2) {expected}" in output
    assert "key 1 of 2" not in output and key not in output


def test_an_open_worker_probe_server_without_a_metrics_token_is_a_warning(
    production: Any,
) -> None:
    production.METRICS_TOKEN = ""
    production.WORKER_METRICS_PORT = 8081
    production.WORKER_METRICS_HOST = "127.0.0.1"
    assert "DEFECTLAB_METRICS_TOKEN" not in deploy_check()[1]
    production.WORKER_METRICS_HOST = "0.0.0.0"
    code, output = deploy_check()
    assert code == 0 and "DEFECTLAB_METRICS_TOKEN is empty" in output and "0.0.0.0" in output
    production.METRICS_TOKEN = "a-token"
    assert "DEFECTLAB_METRICS_TOKEN" not in deploy_check()[1]


def test_the_storage_probe_writes_only_under_its_prefix_and_leaves_nothing(
    production: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    """`restore` wants an empty storage and skips `.defectlab-check-*`: a check killed while it
    writes (a temporary file on the way) must leave nothing else behind."""
    production.STORAGE_DIR = tmp_path / "storage"
    made: list[Path] = []
    real = tempfile.mkstemp

    def recording(*args: Any, **kwargs: Any) -> Any:
        handle, name = real(*args, **kwargs)
        made.append(Path(name))
        return handle, name

    monkeypatch.setattr(storage_module.tempfile, "mkstemp", recording)
    assert deploy_check()[0] == 0
    assert made, "the local storage writes through a temporary file"
    for path in made:
        top = path.relative_to(production.STORAGE_DIR).parts[0]
        assert top.startswith(".defectlab-check-"), path
    assert list(production.STORAGE_DIR.iterdir()) == []


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
