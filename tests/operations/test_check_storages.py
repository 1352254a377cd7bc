"""`defectlab check --deploy` tests every organization's S3 storage connection on a real S3
endpoint on loopback (moto, as tests/media starts it), the way its page's "test" button does:
list, write and delete a probe. A broken one is a warning naming the organization, the storage
and what is wrong (the bucket is the organization's to fix; the operator should know)."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from defectlab.cli import main
from tests.conftest import Tenant
from tests.media.conftest import bucket, loopback_only, s3_server
from tests.media.s3server import LoopbackS3
from tests.media.storages import allow_loopback, keys, make_connection
from tests.operations.test_checks import STRONG_KEY, closed_port

pytestmark = [pytest.mark.usefixtures("loopback_only"), pytest.mark.django_db]
__all__ = ["bucket", "loopback_only", "s3_server"]


@pytest.fixture
def deployment(settings: Any) -> Any:
    """A deployment with nothing else to say: no broker, Redis or https to warn about."""
    settings.DEBUG = False
    settings.PROBLEMS = []
    settings.BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
    settings.REDIS_URL = ""
    settings.SECRET_KEY_SETTING = STRONG_KEY
    settings.PUBLIC_URLS = ["https://defects.example.com"]
    settings.ALLOWED_HOSTS = ["defects.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://defects.example.com"]
    settings.S3_PUBLIC_ENDPOINTS = {}
    settings.PROXY_HEADERS = True
    allow_loopback(settings)
    return settings


def deploy_check() -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check", "--deploy"], prog_name="defectlab")
    return result.exit_code, result.output


def test_a_working_storage_connection_passes_and_leaves_no_probe(
    deployment: Any, tenant: Tenant, s3_server: LoopbackS3, bucket: str
) -> None:
    make_connection(s3_server, bucket, tenant)
    code, output = deploy_check()
    assert (code, "warning" in output) == (0, False), output
    assert keys(s3_server, bucket) == []


def test_a_missing_bucket_is_a_warning_naming_the_organization_and_storage(
    deployment: Any, tenant: Tenant, s3_server: LoopbackS3
) -> None:
    make_connection(s3_server, "no-such-bucket-here", tenant)
    code, output = deploy_check()
    assert code == 0
    assert "warning: Storage “line 3 camera” of Acme" in output
    assert "no-such-bucket-here" in output


def test_a_storage_nothing_answers_at_is_a_warning(
    deployment: Any, tenant: Tenant, s3_server: LoopbackS3, bucket: str
) -> None:
    storage = make_connection(s3_server, bucket, tenant)
    port = closed_port()
    storage.endpoint_url = f"http://127.0.0.1:{port}"
    storage.save(update_fields=["endpoint_url"])
    code, output = deploy_check()
    assert code == 0
    assert "warning: Storage “line 3 camera” of Acme" in output and str(port) in output
