"""Quotas as a factory meets them: the next request over the rate, a second one while the
first is in progress, the image over the day's count, an image too large — each a clear 429 or
413 with Retry-After where waiting helps, metered like any answer. With Redis the limits hold
across replicas (two services here) and a signed request's nonce is spent on all of them;
with Redis gone the service keeps serving and counts in its own process."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import pytest

from defectlab import signature
from defectlab.serving.limits import PREFIX
from defectlab.serving.models import Call
from defectlab.serving.quotas import set_quota
from tests.conftest import Tenant
from tests.serving.conftest import bearer, box_model, jpeg, key_of, put_model

pytestmark = pytest.mark.django_db(transaction=True)
REDIS_URL = os.environ.get("DEFECTLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def key(tenant: Tenant) -> str:
    put_model(tenant.organization, "panels", box_model())
    return key_of(tenant.organization)


def detect(client: Any, key: str, images: int = 1, **kwargs: Any) -> Any:
    files = [("image", jpeg(64, 48))] * images
    return client.post(
        "/v1/detect", params={"model": "panels"}, files=files, headers=bearer(key), **kwargs
    )


def test_over_the_rate_is_429_with_retry_after(serve: Any, tenant: Tenant, key: str) -> None:
    set_quota(tenant.organization, None, requests_per_minute=6)  # a burst of one, then 1 per 10 s
    with serve() as client:
        first = detect(client, key)
        second = detect(client, key)
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(second.headers["Retry-After"]) <= 10
    assert "6" in second.json()["error"]["message"]
    codes = list(Call.objects.order_by("id").values_list("code", flat=True))
    assert codes == ["ok", "rate_limited"]


def test_a_second_request_while_the_first_is_in_progress_is_429(
    serve: Any, tenant: Tenant, key: str
) -> None:
    set_quota(tenant.organization, None, concurrent_requests=1, requests_per_minute=None)
    running, release = threading.Event(), threading.Event()
    with serve() as client:
        assert detect(client, key).status_code == 200  # the model is loaded
        # The next run waits for the test: the first request stays in progress meanwhile.
        (loaded,) = client.service.models.held()
        run = loaded.detector.detect_each

        def held_run(*args: Any, **kwargs: Any) -> Any:
            running.set()
            release.wait(30)
            return run(*args, **kwargs)

        loaded.detector.detect_each = held_run
        first: list[Any] = []
        holder = threading.Thread(target=lambda: first.append(detect(client, key)))
        holder.start()
        try:
            assert running.wait(30)
            second = detect(client, key)
        finally:
            release.set()
            holder.join()
        third = detect(client, key)  # the first is done: room again
    assert first[0].status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "too_many_concurrent"
    assert second.headers["Retry-After"] == "1"
    assert third.status_code == 200


def test_the_days_images_are_counted_per_image(serve: Any, tenant: Tenant, key: str) -> None:
    set_quota(tenant.organization, None, images_per_day=3, requests_per_minute=None)
    with serve() as client:
        missing = client.post(  # refused before any model ran: costs no images
            "/v1/detect",
            params={"model": "nothing"},
            files={"image": jpeg(64, 48)},
            headers=bearer(key),
        )
        assert missing.status_code == 404
        two = detect(client, key, images=2)
        two_more = detect(client, key, images=2)
        one_more = detect(client, key, images=1)
        over = detect(client, key, images=1)
    assert [r.status_code for r in (two, two_more, one_more, over)] == [200, 429, 200, 429]
    assert two_more.json()["error"]["code"] == "daily_images"
    assert 1 <= int(two_more.headers["Retry-After"]) <= 86400


def test_an_image_over_the_largest_size_is_413(serve: Any, tenant: Tenant, key: str) -> None:
    set_quota(tenant.organization, None, max_image_mb=1)
    big = b"\xff\xd8" + os.urandom(1024 * 1024 + 10)
    with serve() as client:
        raw = client.post(
            "/v1/detect?model=panels",
            content=big,
            headers={**bearer(key), "Content-Type": "image/jpeg"},
        )
        multipart = client.post(
            "/v1/detect", params={"model": "panels"}, files={"image": big}, headers=bearer(key)
        )
        small = detect(client, key)
    assert raw.status_code == 413 and raw.json()["error"]["code"] == "image_too_large"
    assert multipart.status_code == 413
    assert small.status_code == 200


def test_one_organization_over_quota_leaves_the_other_alone(
    serve: Any, tenant: Tenant, other_tenant: Tenant, key: str
) -> None:
    put_model(other_tenant.organization, "panels", box_model())
    theirs = key_of(other_tenant.organization)
    set_quota(tenant.organization, None, requests_per_minute=6)
    with serve() as client:
        ours = [detect(client, key).status_code for _ in range(5)]
        other = [detect(client, theirs).status_code for _ in range(5)]
    assert ours == [200, 429, 429, 429, 429]
    assert other == [200] * 5


# ---------------------------------------------------------------------------- Redis


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url(settings: Any) -> str:
    """Redis for the quotas (database 15, emptied of our keys); skipped without Redis, except
    in CI, where it must be there."""
    if not redis_answers():
        if os.environ.get("CI") == "true":
            pytest.fail("Redis does not answer on 127.0.0.1:6379, and CI must test against it")
        pytest.skip(
            "Redis does not answer on 127.0.0.1:6379 (start it: redis-server --daemonize yes)"
        )
    import redis

    connection = redis.Redis.from_url(REDIS_URL)
    for name in connection.scan_iter(f"{PREFIX}*"):
        connection.delete(name)
    connection.close()
    settings.REDIS_URL = REDIS_URL
    return REDIS_URL


def test_with_redis_two_replicas_share_one_rate(
    serve: Any, tenant: Tenant, key: str, redis_url: str
) -> None:
    set_quota(tenant.organization, None, requests_per_minute=6)
    with serve() as one, serve() as two:
        first = detect(one, key)
        on_the_other = detect(two, key)
        back = detect(one, key)
    assert first.status_code == 200
    assert (
        on_the_other.status_code == 429 and on_the_other.json()["error"]["code"] == "rate_limited"
    )
    assert back.status_code == 429


def test_with_redis_two_replicas_share_the_days_images_and_concurrency(
    serve: Any, tenant: Tenant, key: str, redis_url: str
) -> None:
    set_quota(tenant.organization, None, images_per_day=2, requests_per_minute=None)
    with serve() as one, serve() as two:
        assert detect(one, key, images=2).status_code == 200
        over = detect(two, key)
    assert over.status_code == 429 and over.json()["error"]["code"] == "daily_images"


def test_with_redis_a_nonce_is_spent_on_every_replica(
    serve: Any, tenant: Tenant, key: str, redis_url: str
) -> None:
    body = jpeg(64, 48)
    target = "/v1/detect?model=panels"
    headers = {**signature.sign(key, "POST", target, body), "Content-Type": "image/jpeg"}
    with serve() as one, serve() as two:
        first = one.post(target, content=body, headers=headers)
        replayed = two.post(target, content=body, headers=headers)
    assert first.status_code == 200
    assert replayed.status_code == 401 and replayed.json()["error"]["code"] == "replayed_nonce"


def test_with_redis_gone_the_service_serves_and_counts_by_itself(
    serve: Any, tenant: Tenant, key: str, settings: Any
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"  # nothing listens there
    set_quota(tenant.organization, None, requests_per_minute=6)
    with serve() as client:
        first = detect(client, key)
        second = detect(client, key)
    assert first.status_code == 200
    assert second.status_code == 429  # counted in the process meanwhile
