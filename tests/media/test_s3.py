"""S3-compatible storage against a real S3 HTTP endpoint on loopback (moto's server, see
s3server.py for what was added in front of it). No request leaves this machine: `loopback_only`
refuses every name lookup but loopback, and every client has an explicit loopback endpoint."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from django.http import StreamingHttpResponse
from django.test import RequestFactory

from defectlab.config import endpoint_map as _endpoint_map
from defectlab.errors import Invalid
from defectlab.media.s3 import S3Config, S3Storage
from defectlab.media.s3proxy import RangeNotSatisfiable, requested_range, serve_object
from defectlab.media.secrets import SecretError, decrypt_secret, encrypt_secret
from defectlab.media.storage import StorageError
from tests.media.conftest import admin_client, config_for
from tests.media.s3server import LoopbackS3

pytestmark = pytest.mark.usefixtures("loopback_only")

SSE_HEADER = "x-amz-server-side-encryption"


@pytest.fixture
def storage(s3_server: LoopbackS3, bucket: str) -> Iterator[S3Storage]:
    store = S3Storage(config_for(s3_server, bucket, prefix="/tenant-a//images/"))
    yield store
    store.close()


def calls(store: S3Storage, event: str) -> list[dict[str, Any]]:
    """Records the requests botocore is about to send for ``event`` (e.g. PutObject)."""
    seen: list[dict[str, Any]] = []

    def record(request: Any, **_: Any) -> None:
        seen.append(
            {
                k.lower(): v.decode() if isinstance(v, bytes) else v
                for k, v in request.headers.items()
            }
        )

    store.client.meta.events.register(f"before-send.s3.{event}", record)
    return seen


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


# --- configuration ------------------------------------------------------------------------------


def test_config_normalises_and_checks() -> None:
    config = S3Config(bucket="b", prefix="//a//b/", public_endpoints={" Lab.Example ": "http://s3"})
    assert config.prefix == "a/b/"
    assert dict(config.public_endpoints) == {"lab.example": "http://s3"}
    assert S3Config(bucket="b", prefix="/").prefix == ""
    assert "secret" not in repr(S3Config(bucket="b", secret_key="secret"))
    for bad in [
        {"prefix": "a/../b"},
        {"endpoint_url": "s3.example.com"},
        {"sse": "rot13"},
        {"bucket": " "},
    ]:
        with pytest.raises(Invalid):
            S3Config(**{"bucket": "b", **bad})


def test_public_endpoints_setting_parses_pairs() -> None:
    assert _endpoint_map("Lab.Example=https://s3.example, 10.0.0.5:8080=http://10.0.0.5:9000") == {
        "lab.example": "https://s3.example",
        "10.0.0.5:8080": "http://10.0.0.5:9000",
    }
    assert _endpoint_map("") == {}
    for bad in ["lab.example", "lab.example=s3.example", "=http://s3"]:
        with pytest.raises(ValueError):
            _endpoint_map(bad)


def test_public_endpoints_default_to_the_setting(settings: Any) -> None:
    settings.S3_PUBLIC_ENDPOINTS = {"lab.example": "https://s3.example"}
    assert dict(S3Config(bucket="b").public_endpoints) == {"lab.example": "https://s3.example"}


# --- the Storage protocol -----------------------------------------------------------------------


def test_save_read_exists_delete_under_the_prefix(
    storage: S3Storage, s3_server: LoopbackS3
) -> None:
    storage.save("cam1/0001.png", b"\x89PNG pixels")
    assert storage.exists("cam1/0001.png")
    assert storage.read("cam1/0001.png") == b"\x89PNG pixels"
    assert storage.size("cam1/0001.png") == 11
    raw = admin_client(s3_server)
    stored = raw.head_object(Bucket=storage.config.bucket, Key="tenant-a/images/cam1/0001.png")
    assert stored["ContentType"] == "image/png"  # so a presigned URL displays in the browser
    raw.close()
    storage.delete("cam1/0001.png")
    storage.delete("cam1/0001.png")  # deleting what is gone is fine, as for LocalStorage
    assert not storage.exists("cam1/0001.png")
    with pytest.raises(FileNotFoundError):
        storage.read("cam1/0001.png")
    with pytest.raises(FileNotFoundError):
        storage.size("cam1/0001.png")


@pytest.mark.parametrize("key", ["", "../escape.png", "/absolute.png", "a\\b.png", "nul\x00.png"])
def test_keys_are_checked(storage: S3Storage, key: str) -> None:
    with pytest.raises(StorageError):
        storage.save(key, b"x")
    with pytest.raises(StorageError):
        storage.presigned_url(key, "lab.example")


def test_open_streams_and_open_range_reads_a_span(storage: S3Storage) -> None:
    data = bytes(range(256)) * 1024
    storage.save("big.bin", data)
    with storage.open("big.bin") as file:
        assert file.read(3) == b"\x00\x01\x02"  # no whole-object read up front
        assert file.read() == data[3:]
    with storage.open_range("big.bin", 1000, 1999) as file:
        assert file.read() == data[1000:2000]
    with pytest.raises(ValueError):
        storage.open_range("big.bin", 5, 4)


def test_large_files_go_up_in_parts(storage: S3Storage, settings: Any) -> None:
    settings.S3_MULTIPART_MB = 5
    store = S3Storage(storage.config)
    parts = calls(store, "UploadPart")
    data = os.urandom(11 * 1024 * 1024)
    store.save("scan.tif", data)
    assert len(parts) == 3
    assert store.stat("scan.tif").etag.endswith("-3")  # S3's mark of a multipart object
    assert hashlib.sha256(store.read("scan.tif")).digest() == hashlib.sha256(data).digest()
    store.close()


def test_iter_keys_pages_with_prefix_and_start_after(
    storage: S3Storage, s3_server: LoopbackS3
) -> None:
    for index in range(30):
        storage.save(f"batch/{index:03d}.jpg", b"x" * index)
    storage.save("other/z.jpg", b"z")
    raw = admin_client(s3_server)
    for odd in ["tenant-a/images/batch/folder/", "tenant-a/images/batch//double.jpg"]:
        raw.put_object(Bucket=storage.config.bucket, Key=odd, Body=b"")
    raw.close()
    pages = calls(storage, "ListObjectsV2")

    listed = list(storage.iter_keys("batch/", page_size=7))
    assert [item.key for item in listed] == [f"batch/{index:03d}.jpg" for index in range(30)]
    assert len(pages) == 5  # 30 keys (+2 skipped), 7 a page
    assert listed[12].size == 12 and len(listed[12].etag) == 32
    assert listed[12].last_modified.tzinfo is not None

    later = [
        item.key for item in storage.iter_keys("batch/", start_after="batch/024.jpg", page_size=4)
    ]
    assert later == [f"batch/{index:03d}.jpg" for index in range(25, 30)]
    assert [item.key for item in storage.iter_keys()][-1] == "other/z.jpg"
    with pytest.raises(StorageError):
        list(storage.iter_keys("../"))


# --- server-side encryption ---------------------------------------------------------------------


def test_no_encryption_header_unless_configured(storage: S3Storage) -> None:
    puts = calls(storage, "PutObject")
    storage.save("plain.png", b"x")
    assert puts and not any(SSE_HEADER in headers for headers in puts)
    head = storage.client.head_object(Bucket=storage.config.bucket, Key="tenant-a/images/plain.png")
    assert "ServerSideEncryption" not in head


def test_aes256_is_sent_and_reported(s3_server: LoopbackS3, bucket: str) -> None:
    store = S3Storage(config_for(s3_server, bucket, sse="AES256"))
    puts = calls(store, "PutObject")
    store.save("secret.png", b"x")
    assert [headers[SSE_HEADER] for headers in puts] == ["AES256"]
    assert (
        store.client.head_object(Bucket=bucket, Key="secret.png")["ServerSideEncryption"]
        == "AES256"
    )
    store.close()


# --- presigned URLs -----------------------------------------------------------------------------


@pytest.fixture
def signing_store(s3_server: LoopbackS3, bucket: str) -> Iterator[S3Storage]:
    # Two public endpoints that both reach the loopback server under different host names.
    store = S3Storage(
        config_for(
            s3_server,
            bucket,
            public_endpoints={
                "outside.example": s3_server.url("localhost"),
                "vpn.example:8443": s3_server.url("127.0.0.1"),
            },
        )
    )
    store.save("img.png", b"image bytes")
    yield store
    store.close()


@pytest.mark.parametrize(
    ("request_host", "url_host"),
    [
        ("outside.example", "localhost"),
        ("OUTSIDE.example:443", "localhost"),  # port dropped when only the name is mapped
        ("vpn.example:8443", "127.0.0.1"),
        ("elsewhere.example", "127.0.0.1"),  # unmapped: the storage's own endpoint
    ],
)
def test_presigned_url_is_signed_for_the_matching_public_endpoint(
    signing_store: S3Storage, s3_server: LoopbackS3, request_host: str, url_host: str
) -> None:
    url = signing_store.presigned_url("img.png", request_host, expires=60)
    assert url.startswith(f"{s3_server.url(url_host)}/{signing_store.config.bucket}/img.png?")
    assert fetch(url) == (200, b"image bytes")


def test_a_presigned_url_rewritten_after_signing_is_refused(
    signing_store: S3Storage, s3_server: LoopbackS3
) -> None:
    url = signing_store.presigned_url("img.png", "outside.example", expires=60)
    rewritten = url.replace(s3_server.url("localhost"), s3_server.url("127.0.0.1"))
    status, body = fetch(rewritten)
    assert status == 403 and b"SignatureDoesNotMatch" in body
    forged = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    assert fetch(forged)[0] == 403
    assert fetch(url)[0] == 200


def test_presigned_expiry_is_bounded(signing_store: S3Storage) -> None:
    with pytest.raises(ValueError):
        signing_store.presigned_url("img.png", "outside.example", expires=8 * 24 * 3600)


# --- proxy mode ---------------------------------------------------------------------------------

DATA = bytes(range(50))


@pytest.fixture
def served(storage: S3Storage) -> S3Storage:
    storage.save("part.bin", DATA)
    return storage


def proxied(store: S3Storage, method: str = "get", **headers: str) -> tuple[Any, bytes]:
    request = getattr(RequestFactory(), method)("/media/part.bin", **headers)
    response = serve_object(request, store, "part.bin")
    body = (
        b"".join(response.streaming_content)
        if isinstance(response, StreamingHttpResponse)
        else response.content
    )
    # Reading to the end closed the object's stream. Not response.close(): that sends Django's
    # request_finished, whose handler touches database connections these tests may not use.
    return response, body


@pytest.mark.parametrize(
    ("header", "span"),
    [
        ("bytes=10-19", (10, 19)),
        ("bytes=-5", (45, 49)),
        ("bytes=40-", (40, 49)),
        ("bytes=45-999", (45, 49)),
    ],
)
def test_proxy_answers_a_range_with_206(
    served: S3Storage, header: str, span: tuple[int, int]
) -> None:
    response, body = proxied(served, HTTP_RANGE=header)
    start, end = span
    assert response.status_code == 206
    assert body == DATA[start : end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/50"
    assert response["Content-Length"] == str(end - start + 1)
    assert response["Accept-Ranges"] == "bytes"


def test_proxy_whole_file_head_and_if_range(served: S3Storage) -> None:
    response, body = proxied(served)
    assert (response.status_code, body, response["Content-Length"]) == (200, DATA, "50")
    assert response["Accept-Ranges"] == "bytes" and "Content-Range" not in response
    head, empty = proxied(served, "head", HTTP_RANGE="bytes=0-9")
    assert (head.status_code, empty, head["Content-Length"]) == (206, b"", "10")
    stale, body = proxied(served, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"not-the-etag"')
    assert (stale.status_code, body) == (200, DATA)
    fresh, body = proxied(served, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=response["ETag"])
    assert (fresh.status_code, body) == (206, DATA[:10])


@pytest.mark.parametrize("header", ["bytes=50-", "bytes=60-70", "bytes=-0"])
def test_proxy_answers_416_past_the_end(served: S3Storage, header: str) -> None:
    response, _body = proxied(served, HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */50"


def test_proxy_missing_object_is_404(storage: S3Storage) -> None:
    response = serve_object(RequestFactory().get("/"), storage, "gone.png")
    assert response.status_code == 404
    assert json.loads(response.content)["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", (0, 0)),
        ("bytes = 3 - 4", (3, 4)),
        ("items=0-5", None),  # another unit: ignored
        ("bytes=0-1,5-6", None),  # several ranges: ignored, the whole file is sent
        ("bytes=9-3", None),  # backwards: invalid, so ignored
        ("bytes=abc", None),
        ("bytes=-", None),
        ("bytes=-100", (0, 49)),
    ],
)
def test_requested_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert requested_range(header, 50) == expected


def test_requested_range_of_an_empty_file() -> None:
    with pytest.raises(RangeNotSatisfiable):
        requested_range("bytes=-5", 0)
    assert requested_range(None, 0) is None


# --- credentials at rest ------------------------------------------------------------------------


def test_secrets_are_encrypted_and_round_trip(settings: Any) -> None:
    stored = encrypt_secret("minio-secret-key/with+chars")
    assert "minio-secret-key" not in stored and stored.isascii()
    assert stored != encrypt_secret("minio-secret-key/with+chars")  # fresh IV every time
    assert decrypt_secret(stored) == "minio-secret-key/with+chars"

    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-rotated-secret-key-0123456789"
    assert decrypt_secret(stored) == "minio-secret-key/with+chars"  # the old key still reads it

    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(SecretError) as refusal:
        decrypt_secret(stored)
    assert "DEFECTLAB_SECRET_KEY" in refusal.value.message
    with pytest.raises(SecretError):
        decrypt_secret("not a token")
