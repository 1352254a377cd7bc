"""Reading the configuration: each ``DEFECTLAB_*`` environment variable is registered by `env()`
with its default and help text (``docs/configuration.md`` must list them all; a test checks),
parsed by one of the parsers here, and a value that does not parse is recorded in ``PROBLEMS``
with the default used instead, so ``defectlab check`` can explain it in plain words. The
settings module (`defectlab.settings`) is the list of them; this is how they are read."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload
from urllib.parse import urlsplit

import dj_database_url

T = TypeVar("T")


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str


SETTINGS: dict[str, Setting] = {}
PROBLEMS: list[str] = []


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("expected a whole number above zero")
    return number


def positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("expected a number above zero")
    return number


def whole_number(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("expected a whole number, zero or more")
    return number


def zero_or_more(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError("expected a number, zero or more")
    return number


def csv_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def key_list(value: str) -> list[str]:
    """Keys separated by commas or whitespace (a key has neither)."""
    return value.replace(",", " ").split()


def choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in options:
            raise ValueError("expected one of " + ", ".join(options))
        return value

    return parse


@overload
def env(name: str, default: str, help: str) -> str: ...
@overload
def env(name: str, default: str, help: str, parse: Callable[[str], T]) -> T: ...


def env(name: str, default: str, help: str, parse: Callable[[str], Any] = str) -> Any:
    SETTINGS[name] = Setting(name, default, help)
    raw = os.environ.get(name, default)
    try:
        return parse(raw)
    except (ValueError, TypeError) as error:
        PROBLEMS.append(f"{name}={raw!r} is not valid ({error}); using the default {default!r}.")
        return parse(default)


def endpoint_map(value: str) -> dict[str, str]:
    """``app-host=endpoint-url`` pairs, comma-separated."""
    mapping: dict[str, str] = {}
    for pair in csv_list(value):
        host, equals, url = (part.strip() for part in pair.partition("="))
        parts = urlsplit(url)
        if not equals or not host or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{pair!r} is not like app.example.com=https://s3.example.com")
        mapping[host.lower()] = url
    return mapping


def secret_key(given: str, data_dir: Path) -> str:
    """``given``, else the key kept in ``data_dir`` (made there the first time)."""
    if given:
        return given
    key_file = data_dir / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def temp_dir(data_dir: Path) -> Path | None:
    """``data_dir``/tmp, made if missing: where uploads past FILE_UPLOAD_MAX_MEMORY_SIZE and
    export spools wait, on the data volume rather than /tmp (a small tmpfs or emptyDir in a
    container, while nginx takes 4 GB bodies). None where the data directory is read-only
    (a tenant's detection service, which takes no Django uploads): the system's then."""
    path = data_dir / "tmp"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


def database(url: str, data_dir: Path) -> dict[str, Any]:
    """Django's database settings for ``url`` (empty: SQLite in ``data_dir``)."""
    if not url:
        data_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{data_dir / 'defectlab.sqlite3'}"
    config: dict[str, Any] = dict(
        dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    )
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Django's backend, with write transactions taking turns through a lock file rather
        # than SQLite's sleep-and-retry (defectlab/sqlite/base.py says why).
        config["ENGINE"] = "defectlab.sqlite"
        # Kept open between requests like PostgreSQL's (CONN_MAX_AGE 60): opening one and
        # running its PRAGMAs took about 1 ms, on every request.
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
            "PRAGMA foreign_keys=ON; PRAGMA busy_timeout=20000;",
        }
    return config


def hosts(urls: list[str]) -> list[str]:
    """The host names of the addresses people reach the app at (a bad one is a PROBLEM)."""
    hosts = {"127.0.0.1", "localhost", "testserver", "[::1]"}
    for url in urls:
        parts = urlsplit(url)
        if not parts.scheme or not parts.hostname:
            PROBLEMS.append(
                f"DEFECTLAB_PUBLIC_URLS entry {url!r} is not a full URL like https://host."
            )
            continue
        hosts.add(parts.hostname)
    return sorted(hosts)
