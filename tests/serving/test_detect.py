"""`POST /v1/detect` as a line PC calls it: the three bodies, the model by alias, number or
``NAME:ALIAS``, the parameters, a broken image among good ones, another organization's model,
bad requests, 20 calls at once, and one `Call` row for each answer."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from defectlab.inference import registry
from defectlab.serving.models import Call
from defectlab.serving.quotas import set_quota
from tests.conftest import Tenant
from tests.serving.conftest import add_version, bearer, box_model, jpeg, key_of, put_model

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def line(tenant: Tenant) -> dict[str, Any]:
    model = put_model(tenant.organization, "panels", box_model(320, 320))
    return {"model": model, "key": key_of(tenant.organization)}


def _box(answer: dict[str, Any], image: int = 0) -> list[float]:
    return answer["results"][image]["detections"][0]["box"]


def test_multipart_raw_and_json_bodies_answer_the_same(serve: Any, line: dict[str, Any]) -> None:
    image = jpeg(640, 480)
    headers = bearer(line["key"])
    with serve() as client:
        multipart = client.post(
            "/v1/detect",
            params={"model": "panels"},
            files={"image": ("a.jpg", image)},
            headers=headers,
        )
        raw = client.post(
            "/v1/detect?model=panels",
            content=image,
            headers={**headers, "Content-Type": "image/jpeg"},
        )
        as_json = client.post(
            "/v1/detect",
            json={"model": "panels", "images": [{"data": base64.b64encode(image).decode()}]},
            headers=headers,
        )
    answers = [r.json() for r in (multipart, raw, as_json)]
    assert [r.status_code for r in (multipart, raw, as_json)] == [200, 200, 200]
    first = answers[0]
    assert first["model"]["name"] == "panels" and first["model"]["version"] == 1
    assert first["model"]["alias"] == "production"
    result = first["results"][0]
    assert (result["width"], result["height"]) == (640, 480)
    detection = result["detections"][0]
    assert detection["class"] == "scratch" and detection["class_id"] == 0
    # (320, 320) of the 640×640 letterboxed input is (320, 240) of the 640×480 image.
    assert detection["box"] == pytest.approx([280, 210, 360, 270], abs=0.5)
    assert all(_box(a) == _box(first) for a in answers)


def test_several_images_answer_in_order_and_a_broken_one_fails_alone(
    serve: Any, line: dict[str, Any]
) -> None:
    files = [
        ("image", ("a.jpg", jpeg(640, 480))),
        ("image", ("broken.jpg", b"\xff\xd8 not really a jpeg")),
        ("image", ("b.jpg", jpeg(320, 320))),
    ]
    with serve() as client:
        response = client.post(
            "/v1/detect", data={"model": "panels"}, files=files, headers=bearer(line["key"])
        )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert results[1]["error"]["code"] == "unreadable" and "detections" not in results[1]
    assert (results[0]["width"], results[2]["width"]) == (640, 320)
    assert results[0]["detections"] and results[2]["detections"]


def test_a_version_is_named_by_number_alias_or_name_colon_alias(
    serve: Any, tenant: Tenant, line: dict[str, Any]
) -> None:
    model = line["model"]
    add_version(model, None, box_model(100, 100, tag="v2"))
    registry.move_alias(model, None, "staging", 2)
    image = jpeg(640, 640)
    asked = {
        "panels": 1,
        "panels:production": 1,
        "panels:staging": 2,
        "panels:2": 2,
        "panels:1": 1,
    }
    with serve() as client:
        for name, version in asked.items():
            answer = client.post(
                "/v1/detect",
                params={"model": name},
                files={"image": image},
                headers=bearer(line["key"]),
            ).json()
            assert answer["model"]["version"] == version, name
        by_params = client.post(
            "/v1/detect",
            params={"model": "panels", "version": "2"},
            files={"image": image},
            headers=bearer(line["key"]),
        ).json()
    assert by_params["model"] == {
        "name": "panels",
        "version": 2,
        "alias": None,
        "sha256": model.versions.get(number=2).sha256,
    }


def test_thresholds_and_classes_filter_the_detections(serve: Any, line: dict[str, Any]) -> None:
    image = jpeg(640, 640)

    def found(**params: Any) -> int:
        answer = client.post(
            "/v1/detect",
            params={"model": "panels", **params},
            files={"image": image},
            headers=bearer(line["key"]),
        ).json()
        return len(answer["results"][0]["detections"])

    with serve() as client:
        assert found() == 1
        assert found(conf="0.95") == 0  # its score is 0.9
        assert found(classes="dent") == 0
        assert found(classes="scratch,dent") == 1
        refused = client.post(
            "/v1/detect",
            params={"model": "panels", "classes": "crack"},
            files={"image": image},
            headers=bearer(line["key"]),
        )
    assert refused.status_code == 400
    assert refused.json()["error"]["details"] == {"field": "classes"}
    assert "scratch, dent" in refused.json()["error"]["message"]


def test_another_organizations_model_is_not_found(
    serve: Any, tenant: Tenant, other_tenant: Tenant, line: dict[str, Any]
) -> None:
    put_model(other_tenant.organization, "secret-line", box_model())
    their_key = key_of(other_tenant.organization)
    with serve() as client:
        mine = client.post(
            "/v1/detect",
            params={"model": "secret-line"},
            files={"image": jpeg()},
            headers=bearer(line["key"]),
        )
        # The same name in both organizations: each key reaches its own.
        put_model(other_tenant.organization, "panels", box_model(100, 100, tag="theirs"))
        theirs = client.post(
            "/v1/detect",
            params={"model": "panels"},
            files={"image": jpeg(640, 640)},
            headers=bearer(their_key),
        )
        ours = client.post(
            "/v1/detect",
            params={"model": "panels"},
            files={"image": jpeg(640, 640)},
            headers=bearer(line["key"]),
        )
    assert mine.status_code == 404 and mine.json()["error"]["code"] == "model_not_found"
    assert _box(theirs.json()) == pytest.approx([60, 70, 140, 130], abs=0.5)
    assert _box(ours.json()) == pytest.approx([280, 290, 360, 350], abs=0.5)


# What is sent, and the answer's status and code. One service answers them all.
BAD_REQUESTS: list[tuple[dict[str, Any], int, str]] = [
    ({"params": {"model": "pan\x01els"}, "files": {"image": b"x"}}, 400, "invalid_parameter"),
    (
        {"params": {"model": "panels", "alias": "a\x00b"}, "files": {"image": b"x"}},
        400,
        "invalid_parameter",
    ),
    ({"json": {"model": "panels", "images": [{"url": "a"}] * 200}}, 400, "invalid_json"),
    (
        {"json": {"model": "panels", "classes": ["a"] * 5000, "images": [{"url": "a"}]}},
        400,
        "invalid_json",
    ),
    ({"params": {"model": "panels"}}, 415, "unsupported_media_type"),
    (
        {
            "params": {"model": "panels"},
            "content": b"",
            "headers": {"Content-Type": "image/png"},
        },
        400,
        "no_images",
    ),
    ({"params": {}, "files": {"image": b"x"}}, 400, "invalid_parameter"),
    (
        {"params": {"model": "panels", "conf": "1.5"}, "files": {"image": b"x"}},
        400,
        "invalid_parameter",
    ),
    (
        {"params": {"model": "panels", "conf": "nan"}, "files": {"image": b"x"}},
        400,
        "invalid_parameter",
    ),
    (
        {"params": {"model": "panels", "colour": "red"}, "files": {"image": b"x"}},
        400,
        "invalid_parameter",
    ),
    (
        {
            "params": {"model": "panels", "version": "1", "alias": "production"},
            "files": {"image": b"x"},
        },
        400,
        "invalid_parameter",
    ),
    (
        {"params": {"model": "panels"}, "data": {"model": "panels"}, "files": {"image": b"x"}},
        400,
        "invalid_parameter",
    ),
    ({"params": {"model": "panels"}, "files": [("image", b"x")] * 17}, 400, "too_many_images"),
    (
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_json",
    ),
    ({"json": {"model": "panels", "images": [{"data": "%%%"}]}}, 400, "invalid_parameter"),
    ({"json": {"model": "panels", "images": "a.jpg"}}, 400, "invalid_parameter"),
    ({"params": {"model": "panels:9"}, "files": {"image": b"x"}}, 404, "model_not_found"),
    ({"params": {"model": "panels:nightly"}, "files": {"image": b"x"}}, 404, "model_not_found"),
]


def test_requests_that_cannot_be_served_get_a_clear_error(serve: Any, line: dict[str, Any]) -> None:
    with serve() as client:
        for request_kwargs, status, code in BAD_REQUESTS:
            kwargs = dict(request_kwargs)
            headers = {**bearer(line["key"]), **kwargs.pop("headers", {})}
            response = client.post("/v1/detect", headers=headers, **kwargs)
            assert response.status_code == status, (request_kwargs, response.text)
            assert response.json()["error"]["code"] == code, request_kwargs
            assert response.json()["error"]["message"]


def test_errors_speak_the_callers_language(serve: Any, line: dict[str, Any]) -> None:
    with serve() as client:
        response = client.post(
            "/v1/detect",
            params={"model": "nothing"},
            files={"image": jpeg()},
            headers=bearer(line["key"], **{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}),
        )
        wrong = client.post("/v1/detect", headers={"Accept-Language": "zh-Hans"})
        english = client.post("/v1/detect", headers={"Accept-Language": "en-US"})
    assert response.status_code == 404
    assert "nothing" in response.json()["error"]["message"]
    assert "模型" in response.json()["error"]["message"]
    assert wrong.status_code == 401 and "密钥" in wrong.json()["error"]["message"]
    assert english.json()["error"]["message"].startswith("Send an organization API key")


def test_twenty_calls_at_once_each_get_their_own_answer(
    serve: Any, tenant: Tenant, line: dict[str, Any]
) -> None:
    set_quota(tenant.organization, None, concurrent_requests=None, requests_per_minute=None)
    sizes = [(320 + 16 * k, 240 + 8 * k) for k in range(20)]
    with serve() as client:

        def call(size: tuple[int, int]) -> dict[str, Any]:
            response = client.post(
                "/v1/detect",
                params={"model": "panels"},
                files={"image": jpeg(*size)},
                headers=bearer(line["key"]),
            )
            assert response.status_code == 200, response.text
            return response.json()

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(call, sizes))
    for (width, height), answer in zip(sizes, answers, strict=True):
        result = answer["results"][0]
        assert (result["width"], result["height"]) == (width, height)


def test_every_answer_is_metered_once(serve: Any, tenant: Tenant, line: dict[str, Any]) -> None:
    with serve() as client:
        ok = client.post(
            "/v1/detect",
            params={"model": "panels"},
            files=[("image", jpeg()), ("image", jpeg())],
            headers=bearer(line["key"]),
        )
        missing = client.post(
            "/v1/detect",
            params={"model": "gone"},
            files={"image": jpeg()},
            headers=bearer(line["key"]),
        )
        client.post("/v1/detect", params={"model": "panels"}, files={"image": jpeg()})  # no key
    # Leaving the client stopped the service, which wrote what it had.
    calls = list(Call.objects.order_by("id").values())
    assert len(calls) == 2
    first, second = calls
    version = line["model"].versions.get()
    assert ok.status_code == 200 and missing.status_code == 404
    assert (first["status"], first["code"], first["images"], first["detections"]) == (
        200,
        "ok",
        2,
        2,
    )
    assert first["version_id"] == version.pk and first["version_number"] == 1
    assert first["model_name"] == "panels" and first["organization_id"] == tenant.organization.pk
    assert first["client_ip"] == "127.0.0.1"
    assert (second["status"], second["code"], second["version_id"]) == (
        404,
        "model_not_found",
        None,
    )
    assert all(call["key_id"] is not None for call in calls)
    assert json.dumps(calls, default=str).count("panels") == 1


def test_a_model_whose_name_holds_a_colon_is_reached_with_its_version_given_apart(
    serve: Any, tenant: Tenant, line: dict[str, Any]
) -> None:
    put_model(tenant.organization, "cam:2", box_model(100, 100, tag="cam"))
    with serve() as client:
        named = client.post(
            "/v1/detect",
            params={"model": "cam:2", "version": "1"},
            files={"image": jpeg(640, 640)},
            headers=bearer(line["key"]),
        )
        aliased = client.post(
            "/v1/detect",
            params={"model": "cam:2", "alias": "production"},
            files={"image": jpeg(640, 640)},
            headers=bearer(line["key"]),
        )
    assert named.status_code == 200 and named.json()["model"]["name"] == "cam:2"
    assert aliased.json()["model"]["name"] == "cam:2"


def test_a_body_over_the_services_limit_is_413_before_it_is_read_whole(
    serve: Any, settings: Any, line: dict[str, Any]
) -> None:
    settings.INFERENCE_MAX_BODY_MB = 1
    with serve() as client:
        response = client.post(
            "/v1/detect",
            params={"model": "panels"},
            files=[("image", b"\xff\xd8" + bytes(600_000))] * 2,
            headers=bearer(line["key"]),
        )
        small = client.post(
            "/v1/detect",
            params={"model": "panels"},
            files={"image": jpeg()},
            headers=bearer(line["key"]),
        )
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
    assert small.status_code == 200
