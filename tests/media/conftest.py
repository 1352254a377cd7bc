"""Fixtures for the S3 storage tests: a loopback S3 server, and a guard that keeps every name
lookup (and so every connection botocore or urllib make) on this machine."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from defectlab.media.s3 import S3Config
from tests.media.s3server import LoopbackS3

ACCESS_KEY = "AKIADEFECTLABTEST000"
SECRET_KEY = "defectlab-test-secret-key"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackS3]:
    with pytest.MonkeyPatch.context() as patch:
        # Dummy credentials, and nothing from the developer's ~/.aws, environment endpoints or
        # the EC2 metadata service (169.254.169.254) can take part.
        nowhere = tmp_path_factory.mktemp("aws") / "none"
        patch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        patch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("AWS_CONFIG_FILE", str(nowhere))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        server = LoopbackS3({ACCESS_KEY: SECRET_KEY})
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def loopback_only() -> Iterator[list[str]]:
    """Only loopback names resolve. Names under ``.invalid`` fail the way RFC 6761 tells resolvers
    to, without a query leaving the machine (this machine's resolver is not on loopback). Any
    other lookup is recorded, fails, and fails the module at teardown."""
    real = socket.getaddrinfo
    strays: list[str] = []

    def guarded(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = (host.decode() if isinstance(host, bytes) else str(host)).rstrip(".").lower()
        if name in ("127.0.0.1", "::1"):
            return real(host, port, *args, **kwargs)
        if name == "localhost":
            return real("127.0.0.1", port, *args, **kwargs)
        if not name.endswith(".invalid"):
            strays.append(name)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", guarded)
        yield strays
    assert not strays, f"tests tried to resolve non-loopback names: {strays}"


_SESSION: list[boto3.session.Session] = []  # one, made on first use: sessions are slow to make


def admin_client(server: LoopbackS3, region: str = REGION, service: str = "s3") -> Any:
    """A plain client for arranging and inspecting what the code under test did."""
    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    return _SESSION[0].client(
        service,
        endpoint_url=server.url(),
        region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


@pytest.fixture
def bucket(s3_server: LoopbackS3) -> Iterator[str]:
    """A fresh bucket per test: moto's state lives as long as the server."""
    name = f"lab-{uuid.uuid4().hex[:16]}"
    client = admin_client(s3_server)
    client.create_bucket(Bucket=name)
    yield name
    client.close()


def config_for(server: LoopbackS3, bucket: str, **changes: Any) -> S3Config:
    """A working configuration for ``bucket`` on the loopback server, with ``changes``."""
    options: dict[str, Any] = {
        "bucket": bucket,
        "endpoint_url": server.url(),
        "region": REGION,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "path_style": True,
        "public_endpoints": {},
        **changes,
    }
    return S3Config(**options)
