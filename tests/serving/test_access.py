"""Who may call: a wrong, made-up or revoked key is refused with 401 (a revoked one within the
refresh time, on a running service); a key without the ``detect`` scope with 403; a signed
request is refused when its body, timestamp, nonce or signature does not hold, and a key made
for signed requests only refuses to be a bearer token."""

from __future__ import annotations

import time
from typing import Any

import pytest

from defectlab import signature
from defectlab.serving.keys import revoke_key
from defectlab.serving.models import OrganizationKey
from tests.conftest import Tenant
from tests.serving.conftest import bearer, box_model, jpeg, key_of, put_model

pytestmark = pytest.mark.django_db(transaction=True)
TARGET = "/v1/detect?model=panels"


@pytest.fixture(autouse=True)
def panels(tenant: Tenant) -> None:
    put_model(tenant.organization, "panels", box_model())


def raw(client: Any, headers: dict[str, str], body: bytes, target: str = TARGET) -> Any:
    return client.post(target, content=body, headers={"Content-Type": "image/jpeg", **headers})


def signed(key: str, body: bytes, **kwargs: Any) -> dict[str, str]:
    return signature.sign(key, "POST", TARGET, body, **kwargs)


def code(response: Any) -> str:
    return response.json()["error"]["code"]


def test_no_key_a_wrong_key_and_a_made_up_key_are_401(serve: Any, tenant: Tenant) -> None:
    key = key_of(tenant.organization)
    key_id = signature.split_key(key)[0]  # type: ignore[index]
    body = jpeg()
    with serve() as client:
        assert code(raw(client, {}, body)) == "missing_key"
        wrong_secret = f"dlk_{key_id}_{'x' * 43}"
        for header in (
            f"Bearer {wrong_secret}",
            "Bearer dlk_aaaaaaaaaa_" + "y" * 43,
            "Bearer nope",
            "Basic Zm9vOmJhcg==",
        ):
            response = raw(client, {"Authorization": header}, body)
            assert response.status_code == 401, header
            assert code(response) == "invalid_key"
            assert (
                response.headers.get("www-authenticate") is None
                or "Bearer" in response.headers["www-authenticate"]
            )
        assert raw(client, bearer(key), body).status_code == 200


def test_a_revoked_key_is_refused_by_the_running_service_within_the_refresh_time(
    serve: Any, tenant: Tenant
) -> None:
    key = key_of(tenant.organization)
    body = jpeg()
    with serve() as client:
        assert raw(client, bearer(key), body).status_code == 200  # now kept in memory
        revoke_key(OrganizationKey.objects.get(), None)
        deadline = time.monotonic() + 10
        while raw(client, bearer(key), body).status_code == 200:
            assert time.monotonic() < deadline, "the revoked key was still accepted"
            time.sleep(0.05)
        refused = raw(client, bearer(key), body)
    assert refused.status_code == 401 and code(refused) == "invalid_key"


def test_a_key_without_the_detect_scope_is_403(serve: Any, tenant: Tenant) -> None:
    key = key_of(tenant.organization, "models")
    with serve() as client:
        response = raw(client, bearer(key), jpeg())
    assert response.status_code == 403 and code(response) == "scope"


def test_a_signed_request_is_answered_and_its_replay_refused(serve: Any, tenant: Tenant) -> None:
    key = key_of(tenant.organization)
    body = jpeg()
    headers = signed(key, body)
    with serve() as client:
        first = raw(client, headers, body)
        again = raw(client, headers, body)
    assert first.status_code == 200, first.text
    assert first.json()["results"][0]["detections"]
    assert again.status_code == 401 and code(again) == "replayed_nonce"


TAMPERINGS = (
    "body",
    "body_hash",
    "stale",
    "future",
    "signature",
    "other_target",
    "other_key",
    "no_hash",
)


def test_a_signed_request_that_does_not_hold_is_401(serve: Any, tenant: Tenant) -> None:
    key = key_of(tenant.organization)
    other = key_of(tenant.organization)
    with serve() as client:
        for tamper in TAMPERINGS:
            response = tampered(client, key, other, tamper)
            assert response.status_code == 401, (tamper, response.text)


def tampered(client: Any, key: str, other: str, tamper: str) -> Any:
    """A signed request changed in one way after signing; its answer must name the change."""
    body = jpeg()
    headers = signed(key, body)
    sent = body
    expected = {
        "body": "body_hash_mismatch",
        "body_hash": "bad_signature",
        "stale": "stale_timestamp",
        "future": "stale_timestamp",
        "signature": "bad_signature",
        "other_target": "bad_signature",
        "other_key": "bad_signature",
        "no_hash": "missing_body_hash",
    }[tamper]
    target = TARGET
    if tamper == "body":
        sent = body[:-10] + b"0123456789"  # the declared hash is the original body's
    elif tamper == "body_hash":
        headers[signature.BODY_HEADER] = signature.body_hash(b"something else")
    elif tamper in ("stale", "future"):
        shift = -3600 if tamper == "stale" else 3600
        headers = signed(key, body, timestamp=int(time.time()) + shift)
    elif tamper == "signature":
        parts = headers["Authorization"].rsplit("signature=", 1)
        flipped = "0" if parts[1][0] != "0" else "1"
        headers["Authorization"] = f"{parts[0]}signature={flipped}{parts[1][1:]}"
    elif tamper == "other_target":
        target = "/v1/detect?model=panels&conf=0.01"
    elif tamper == "other_key":
        # Signed with another key of the same organization, but naming the first key's id.
        mine = signature.split_key(key)[0]  # type: ignore[index]
        theirs = signature.sign(other, "POST", TARGET, body)
        headers = {
            **theirs,
            "Authorization": theirs["Authorization"].replace(
                f"key={signature.split_key(other)[0]}",
                f"key={mine}",  # type: ignore[index]
            ),
        }
    elif tamper == "no_hash":
        del headers[signature.BODY_HEADER]
    response = raw(client, headers, sent, target)
    assert code(response) == expected, tamper
    return response


UNREADABLE = [
    f"{signature.SCHEME} key=abc",
    f"{signature.SCHEME} key=aaaaaaaaaa, ts=1, nonce=short, signature={'0' * 64}",
    f"{signature.SCHEME} key=aaaaaaaaaa, ts=x, nonce={'n' * 20}, signature={'0' * 64}",
    f"{signature.SCHEME} key=aaaaaaaaaa, key=aaaaaaaaaa, ts=1, nonce={'n' * 20}",
]


def test_an_unreadable_signature_header_is_401(serve: Any) -> None:
    with serve() as client:
        for header in UNREADABLE:
            response = raw(client, {"Authorization": header}, b"x")
            assert response.status_code == 401, header
            assert code(response) in ("malformed_signature", "malformed_nonce")


def test_a_signed_only_key_refuses_to_be_a_bearer_token(serve: Any, tenant: Tenant) -> None:
    key = key_of(tenant.organization, signed_only=True)
    body = jpeg()
    with serve() as client:
        as_bearer = raw(client, bearer(key), body)
        as_signed = raw(client, signed(key, body), body)
    assert as_bearer.status_code == 401 and code(as_bearer) == "signature_required"
    assert as_signed.status_code == 200


def test_a_revoked_key_cannot_sign_either(serve: Any, tenant: Tenant) -> None:
    key = key_of(tenant.organization)
    revoke_key(OrganizationKey.objects.get(), None)
    body = jpeg()
    with serve() as client:
        response = raw(client, signed(key, body), body)
    assert response.status_code == 401 and code(response) == "invalid_key"


def test_the_key_is_stored_only_as_its_hash_and_an_encrypted_signing_key(tenant: Tenant) -> None:
    key = key_of(tenant.organization)
    row = OrganizationKey.objects.values().get()
    text = repr(row)
    _key_id, secret = signature.split_key(key)  # type: ignore[misc]
    assert secret not in text and key not in text
    assert signature.signing_key(key).hex() not in text
    assert row["secret_hash"] == __import__("hashlib").sha256(key.encode()).hexdigest()
