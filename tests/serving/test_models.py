"""Which version answers: an alias moved under load switches with no failed request and no
answer mixing versions; a version that fails to load leaves the old one answering and says why
(/readyz, /metrics); versions of different YOLO generations answer side by side; the memory
budget unloads the version used least recently, and it loads again when asked."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from defectlab.inference import registry
from defectlab.inference.models import DetectionModel, ModelVersion
from defectlab.media.storage import default_storage
from tests.conftest import Tenant
from tests.inference.graphs import constant_model
from tests.serving.conftest import add_version, bearer, box_model, jpeg, key_of, put_model

pytestmark = pytest.mark.django_db(transaction=True)
SQUARE = jpeg(640, 640)
WHERE = {1: [280, 290, 360, 350], 2: [60, 70, 140, 130]}  # each version's box on SQUARE


@pytest.fixture
def two_versions(tenant: Tenant) -> tuple[DetectionModel, str]:
    model = put_model(tenant.organization, "panels", box_model(320, 320))
    add_version(model, None, box_model(100, 100, tag="v2"))
    return model, key_of(tenant.organization)


def ask(client: Any, key: str, model: str = "panels") -> Any:
    return client.post(
        "/v1/detect", params={"model": model}, files={"image": SQUARE}, headers=bearer(key)
    )


def wait_for(condition: Any, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def test_an_alias_moved_under_load_switches_without_failures_or_mixing(
    serve: Any, tenant: Tenant, two_versions: tuple[DetectionModel, str]
) -> None:
    model, key = two_versions
    from defectlab.serving.quotas import set_quota

    set_quota(tenant.organization, None, requests_per_minute=None, concurrent_requests=None)
    answers: list[Any] = []
    stop = threading.Event()
    with serve() as client:
        ask(client, key)  # the route exists before the moves start

        def load() -> None:
            while not stop.is_set():
                answers.append(ask(client, key))

        senders = [threading.Thread(target=load) for _ in range(3)]
        for sender in senders:
            sender.start()
        try:
            for move in range(10):
                number = 2 if move % 2 == 0 else 1
                registry.move_alias(model, None, "production", number)
                wait_for(lambda n=number: ask(client, key).json()["model"]["version"] == n)
        finally:
            stop.set()
            for sender in senders:
                sender.join()
    assert len(answers) > 10
    seen = set()
    for response in answers:
        assert response.status_code == 200, response.text
        answer = response.json()
        number = answer["model"]["version"]
        seen.add(number)
        assert answer["model"]["sha256"] == model.versions.get(number=number).sha256
        box = answer["results"][0]["detections"][0]["box"]
        assert box == pytest.approx(WHERE[number], abs=0.5), "an answer mixing versions"
    assert seen == {1, 2}


def test_a_version_that_fails_to_load_leaves_the_old_one_answering(
    serve: Any, tenant: Tenant, two_versions: tuple[DetectionModel, str]
) -> None:
    model, key = two_versions
    broken = ModelVersion.objects.get(model=model, number=2)
    with serve() as client:
        assert ask(client, key).json()["model"]["version"] == 1
        default_storage().save(broken.file_key, b"not an onnx file any more")
        registry.move_alias(model, None, "production", 2)
        wait_for(lambda: client.get("/readyz").json()["alias_problems"])
        still = ask(client, key)
        ready = client.get("/readyz").json()
        problems = dict(client.service.routes.problems)
        metrics = client.get("/metrics").text
    assert still.status_code == 200 and still.json()["model"]["version"] == 1
    # /readyz says how many, not whose: anyone who reaches the port may ask.
    assert ready["alias_problems"] == 1 and "panels" not in str(ready)
    ((route, message),) = problems.items()
    assert route[1:] == ("panels", "production") and message
    assert "defectlab_inference_alias_swap_failures_total 1.0" in metrics


def test_a_version_that_failed_to_load_is_tried_again_later_not_at_every_call(
    serve: Any, monkeypatch: pytest.MonkeyPatch, two_versions: tuple[DetectionModel, str]
) -> None:
    from defectlab.serving import loaded as loaded_module

    monkeypatch.setattr(loaded_module, "RETRY_SECONDS", 0.5)
    model, key = two_versions
    version = ModelVersion.objects.get(model=model, number=2)
    good = registry.read_file(version)
    with serve() as client:
        client.service.models.retry_seconds = 0.5
        assert ask(client, key).json()["model"]["version"] == 1
        default_storage().save(version.file_key, b"gone for a moment")
        loads = client.service.models.loads
        attempts: list[int] = []
        load = client.service.models._load

        def counted(row: ModelVersion) -> Any:
            attempts.append(row.pk)
            return load(row)

        client.service.models._load = counted  # type: ignore[method-assign]
        asked = [
            client.post(
                "/v1/detect",
                params={"model": "panels:2"},
                files={"image": SQUARE},
                headers=bearer(key),
            ).status_code
            for _ in range(5)
        ]
        tried = len(attempts)
        registry.move_alias(model, None, "production", 2)  # while its file is still broken
        wait_for(lambda: client.service.routes.problems)
        default_storage().save(version.file_key, good)  # back again
        wait_for(lambda: ask(client, key).json()["model"]["version"] == 2)
        numbered = client.post(
            "/v1/detect", params={"model": "panels:2"}, files={"image": SQUARE}, headers=bearer(key)
        )
    assert asked == [503] * 5
    assert tried == 1  # the other four were answered from the remembered failure
    assert client.service.models.loads == loads + 1  # the one that worked, after the file returned
    assert numbered.status_code == 200
    assert not client.service.routes.problems


def test_yolo_generations_answer_side_by_side(serve: Any, tenant: Tenant) -> None:
    v5_rows = np.array([[[320, 320, 80, 60, 0.9, 1.0, 0.1]]], dtype=np.float32)
    v5 = constant_model(
        {"output0": v5_rows}, metadata={"stride": "32", "names": "{0: 'scratch', 1: 'dent'}"}
    )
    e2e_rows = np.zeros((1, 300, 6), dtype=np.float32)
    e2e_rows[0, 0] = [280, 290, 360, 350, 0.9, 1]
    end2end = constant_model(
        {"output0": e2e_rows},
        metadata={"end2end": "True", "task": "detect", "names": "{0: 'scratch', 1: 'dent'}"},
    )
    put_model(tenant.organization, "v5", v5)
    put_model(tenant.organization, "v8", box_model(320, 320))
    put_model(tenant.organization, "e2e", end2end)
    key = key_of(tenant.organization)
    with serve() as client:
        found = {
            name: ask(client, key, name).json()["results"][0]["detections"]
            for name in ("v5", "v8", "e2e")
        }
    assert [d["class"] for d in found["v5"]] == ["scratch"]
    assert [d["class"] for d in found["e2e"]] == ["dent"]
    for name in ("v5", "v8", "e2e"):
        assert found[name][0]["box"] == pytest.approx(WHERE[1], abs=0.5), name


def test_the_memory_budget_unloads_the_least_recently_used(
    serve: Any, settings: Any, tenant: Tenant
) -> None:
    # Files of about 200 kB (a long description in their metadata): a loaded one counts as
    # 600 kB, so a budget of 1 MB holds one at a time.
    model = put_model(tenant.organization, "panels", box_model(320, 320, tag="1" * 200_000))
    add_version(model, None, box_model(100, 100, tag="2" * 200_000))
    key = key_of(tenant.organization)
    settings.INFERENCE_MEMORY_MB = 1
    with serve() as client:
        first = client.post(
            "/v1/detect", params={"model": "panels:1"}, files={"image": SQUARE}, headers=bearer(key)
        )
        second = client.post(
            "/v1/detect", params={"model": "panels:2"}, files={"image": SQUARE}, headers=bearer(key)
        )
        held = [loaded.number for loaded in client.service.models.held()]
        again = client.post(
            "/v1/detect", params={"model": "panels:1"}, files={"image": SQUARE}, headers=bearer(key)
        )
        loads = client.service.models.loads
    assert [r.status_code for r in (first, second, again)] == [200, 200, 200]
    assert held == [2]
    assert again.json()["results"][0]["detections"][0]["box"] == pytest.approx(WHERE[1], abs=0.5)
    assert loads == 3


def test_readyz_waits_for_the_preloaded_models(
    serve: Any, settings: Any, two_versions: tuple[DetectionModel, str]
) -> None:
    settings.INFERENCE_PRELOAD = ["production"]
    with serve() as client:
        wait_for(lambda: client.get("/readyz").status_code == 200)
        ready = client.get("/readyz").json()
        held = [loaded.number for loaded in client.service.models.held()]
    assert ready["ready"] and ready["models_loaded"] == 1 and held == [1]
    assert client.service.models.loads == 1


def test_a_version_that_cannot_be_loaded_at_all_is_503(
    serve: Any, two_versions: tuple[DetectionModel, str]
) -> None:
    model, key = two_versions
    broken = ModelVersion.objects.get(model=model, number=2)
    default_storage().save(broken.file_key, b"not an onnx file any more")
    with serve() as client:
        response = client.post(
            "/v1/detect", params={"model": "panels:2"}, files={"image": SQUARE}, headers=bearer(key)
        )
        other = ask(client, key)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    assert "panels" in response.json()["error"]["message"]
    assert other.status_code == 200


def test_the_organizations_saved_sensitivity_applies_within_the_refresh_time(
    serve: Any, two_versions: tuple[DetectionModel, str]
) -> None:
    model, key = two_versions  # v1 finds one scratch scored 0.9

    def found(client: Any) -> int:
        return len(ask(client, key).json()["results"][0]["detections"])

    with serve() as client:
        assert found(client) == 1
        registry.set_sensitivity(model, None, conf=0.95)
        wait_for(lambda: found(client) == 0)
        asked_lower = client.post(
            "/v1/detect",
            params={"model": "panels", "conf": "0.5"},
            files={"image": SQUARE},
            headers=bearer(key),
        )
        registry.set_sensitivity(model, None, conf=None)
        wait_for(lambda: found(client) == 1)
    assert len(asked_lower.json()["results"][0]["detections"]) == 1  # the request's own wins
