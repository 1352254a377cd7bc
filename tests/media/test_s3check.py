"""`storage_problems` against the loopback S3 server and against loopback ports that refuse, stay
silent or speak no TLS. Every diagnosis is checked by its stable code and must carry a message.
No request leaves this machine (see `loopback_only` in conftest.py)."""

from __future__ import annotations

import errno
import json
import socket
import uuid

import pytest
from botocore.exceptions import EndpointConnectionError

from defectlab.media import s3check
from defectlab.media.s3 import S3Config
from tests.media.conftest import admin_client, config_for
from tests.media.s3server import LoopbackS3

pytestmark = pytest.mark.usefixtures("loopback_only")


def codes(problems: list[s3check.StorageProblem]) -> list[str]:
    for problem in problems:
        assert problem.message  # every diagnosis is a sentence for a person
    return [problem.code for problem in problems]


def test_connection_ok(s3_server: LoopbackS3, bucket: str) -> None:
    assert s3check.storage_problems(config_for(s3_server, bucket, sse="AES256")) == []
    raw = admin_client(s3_server)
    assert "Contents" not in raw.list_objects_v2(Bucket=bucket)  # the probe was cleaned up
    raw.close()


def test_connection_bucket_missing(s3_server: LoopbackS3) -> None:
    problems = s3check.storage_problems(config_for(s3_server, "no-such-bucket-here"))
    assert codes(problems) == ["bucket_missing"]
    assert "no-such-bucket-here" in problems[0].message


def test_connection_refused(bucket: str) -> None:
    # A bound socket that does not listen: the port is ours and every connection is refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        config = S3Config(
            bucket=bucket,
            endpoint_url=f"http://127.0.0.1:{port}",
            access_key="a",
            secret_key="b",
            path_style=True,
        )
        problems = s3check.storage_problems(config)
    assert codes(problems) == ["refused"]
    assert str(port) in problems[0].message


def test_connection_dns_failure(bucket: str) -> None:
    config = S3Config(
        bucket=bucket,
        endpoint_url="http://s3.defectlab.invalid:9000",
        access_key="a",
        secret_key="b",
        path_style=True,
    )
    problems = s3check.storage_problems(config)
    assert codes(problems) == ["dns"]
    assert "s3.defectlab.invalid" in problems[0].message


def test_connection_timeout(bucket: str) -> None:
    # Listens (the kernel completes the handshake) but never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        config = S3Config(
            bucket=bucket,
            endpoint_url=f"http://127.0.0.1:{port}",
            access_key="a",
            secret_key="b",
            path_style=True,
        )
        assert codes(s3check.storage_problems(config, timeout=0.3)) == ["timeout"]


def test_connection_tls_error(s3_server: LoopbackS3, bucket: str) -> None:
    # https:// to a server that speaks plain HTTP.
    config = config_for(s3_server, bucket, endpoint_url=f"https://127.0.0.1:{s3_server.port}")
    assert codes(s3check.storage_problems(config)) == ["tls"]


def test_connection_unreachable_is_named() -> None:
    config = S3Config(bucket="b", endpoint_url="http://10.9.9.9:9000")
    error = EndpointConnectionError(
        endpoint_url="http://10.9.9.9:9000", error=OSError(errno.EHOSTUNREACH, "No route to host")
    )
    where = s3check._Where("http://10.9.9.9:9000", config, 5)
    assert s3check._diagnose(error, where, "list").code == "unreachable"


def test_connection_region_mismatch(s3_server: LoopbackS3) -> None:
    name = f"lab-eu-{uuid.uuid4().hex[:12]}"
    raw = admin_client(s3_server, "eu-west-1")
    raw.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    raw.close()
    problems = s3check.storage_problems(config_for(s3_server, name, region="us-east-1"))
    assert codes(problems) == ["region_mismatch"]
    assert "eu-west-1" in problems[0].message


def test_connection_sse_unsupported_like_minio(s3_server: LoopbackS3, bucket: str) -> None:
    s3_server.check.refuse_sse.add(bucket)
    try:
        problems = s3check.storage_problems(config_for(s3_server, bucket, sse="AES256"))
        assert codes(problems) == ["sse_unsupported"]
        assert s3check.storage_problems(config_for(s3_server, bucket)) == []  # without SSE: fine
    finally:
        s3_server.check.refuse_sse.discard(bucket)
    raw = admin_client(s3_server)
    assert "Contents" not in raw.list_objects_v2(Bucket=bucket)  # both probes cleaned up
    raw.close()


def test_connection_sse_silently_ignored(s3_server: LoopbackS3, bucket: str) -> None:
    s3_server.check.ignore_sse.add(bucket)
    try:
        problems = s3check.storage_problems(config_for(s3_server, bucket, sse="AES256"))
    finally:
        s3_server.check.ignore_sse.discard(bucket)
    assert codes(problems) == ["sse_unsupported"]
    assert "without" in problems[0].message


def test_connection_credentials_and_permissions(s3_server: LoopbackS3, bucket: str) -> None:
    # moto checks header signatures and IAM policies only with its IAM checks on, and then only
    # for keys it issued: make a user allowed everything in S3, a read-only user and one with no
    # policy at all.
    iam = admin_client(s3_server, service="iam")
    keys = {}
    policies = {"full": ["s3:*"], "reader": ["s3:ListBucket", "s3:GetObject"], "none": []}
    for role, actions in policies.items():
        user = f"{role}-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        keys[role] = iam.create_access_key(UserName=user)["AccessKey"]
        if actions:
            document = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
            }
            iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(document))
    iam.close()

    def check(role: str, **changes: str) -> list[str]:
        key = keys[role]
        credentials = {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
        config = config_for(s3_server, bucket, **{**credentials, **changes})
        return codes(s3check.storage_problems(config))

    with s3_server.iam_checks():
        assert check("full") == []
        assert check("full", secret_key="not-the-secret") == ["credentials"]
        assert check("full", access_key="AKIANOSUCHKEY0000000") == ["credentials"]
        assert check("none") == ["access_denied"]
        assert check("reader") == ["access_denied"]
