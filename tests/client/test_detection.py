"""`DetectionClient` and `defectlab detect` against the real detection service (its app on
uvicorn in a thread, on loopback: tests/serving/conftest.py), as a line PC calls it: with the
key as a bearer token and signed, forty images in batches, a rate limit waited out, a wrong key,
a service that is not there, the command's table and JSON lines."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import defectlab
from defectlab.cli import main
from defectlab.client import ApiError, DetectionClient, ImageResult
from defectlab.client.detection import MAX_IMAGES
from defectlab.inference import registry
from defectlab.serving import inputs
from defectlab.serving.models import Call
from defectlab.serving.quotas import set_quota
from tests.conftest import Tenant
from tests.serving.conftest import (
    add_version,
    box_model,
    jpeg,
    key_of,
    put_model,
    running,
    service_settings,
)

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent.parent
SOURCE = Path(defectlab.__file__).parent.parent

# The service's settings for tests (quick alias refreshes, counting in this process) apply here
# as in tests/serving: the autouse fixture is imported, not copied.
__all__ = ["service_settings"]


@pytest.fixture
def line(tenant: Tenant) -> dict[str, Any]:
    model = put_model(tenant.organization, "panels", box_model(320, 320))
    return {"model": model, "key": key_of(tenant.organization)}


def boxes(results: list[ImageResult]) -> list[list[tuple[str, float, tuple[float, ...]]]]:
    return [[(d.class_name, d.score, d.box) for d in r.detections] for r in results]


def test_the_client_and_the_service_agree_on_the_batch_size() -> None:
    assert inputs.MAX_IMAGES == MAX_IMAGES


def test_bearer_and_signed_calls_find_the_same(line: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "panel 1.jpg"
    path.write_bytes(jpeg(640, 480))
    images: list[Any] = [path, str(path), jpeg(640, 640), io.BytesIO(jpeg(320, 240))]
    with running() as service:
        with DetectionClient(str(service.base_url), line["key"]) as bearer:
            plain = bearer.detect([*images[:3], io.BytesIO(jpeg(320, 240))], "panels")
        with DetectionClient(str(service.base_url), line["key"], sign=True) as signer:
            signed = signer.detect(images, "panels", conf=0.5, classes=["scratch"])
    assert boxes(plain) == boxes(signed)
    assert [r.index for r in signed] == [0, 1, 2, 3]
    assert [r.name for r in signed] == [str(path), str(path), None, None]
    first = signed[0]
    assert first.ok and (first.width, first.height) == (640, 480)
    (found,) = first.detections
    assert (found.class_name, found.class_id, found.score) == ("scratch", 0, 0.9)
    # (320, 320) of the 640×640 letterboxed input is (320, 240) of the 640×480 image.
    assert found.box == pytest.approx((280, 210, 360, 270), abs=0.5)
    assert first.model is not None
    assert (first.model.name, first.model.version, first.model.alias) == ("panels", 1, "production")
    assert first.model.sha256 == line["model"].versions.get().sha256


def test_a_signed_only_key_is_refused_as_a_bearer_token_and_served_signed(
    tenant: Tenant, line: dict[str, Any]
) -> None:
    key = key_of(tenant.organization, signed_only=True)
    with running() as service:
        with (
            DetectionClient(str(service.base_url), key) as bearer,
            pytest.raises(ApiError) as refused,
        ):
            bearer.detect([jpeg()], "panels")
        with DetectionClient(str(service.base_url), key, sign=True) as signer:
            (result,) = signer.detect([jpeg()], "panels")
    assert (refused.value.status, refused.value.code) == (401, "signature_required")
    assert result.ok and len(result.detections) == 1


def test_forty_images_go_in_three_calls_and_come_back_in_order(
    line: dict[str, Any], tmp_path: Path
) -> None:
    sizes = [(200 + 8 * k, 150 + 4 * k) for k in range(40)]
    images: list[Any] = []
    for k, size in enumerate(sizes):
        if k % 2:
            images.append(jpeg(*size))
        else:
            images.append(tmp_path / f"{k:02}.jpg")
            images[-1].write_bytes(jpeg(*size))
    images[21] = b"\xff\xd8 not really a jpeg"  # in the second call: fails alone
    with running() as service, DetectionClient(str(service.base_url), line["key"]) as client:
        results = client.detect(images, "panels:production")
    assert [r.index for r in results] == list(range(40))
    assert results[21].error is not None and results[21].error.code == "unreadable"
    assert not results[21].detections and results[21].width is None
    for k, result in enumerate(results):
        if k != 21:
            assert (result.width, result.height) == sizes[k], k
            assert len(result.detections) == 1
    assert [r.name for r in results[:3]] == [
        str(tmp_path / "00.jpg"),
        None,
        str(tmp_path / "02.jpg"),
    ]
    # Leaving the service wrote its meter: one row a call, 16 + 16 + 8 images.
    assert list(Call.objects.order_by("id").values_list("images", flat=True)) == [16, 16, 8]


def test_the_batches_of_one_detect_are_seen_by_one_version_while_the_alias_moves(
    line: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first call names the version `production` points at; the next calls ask for it by
    number, so moving the alias mid-way (and the service having taken the move) changes nothing
    for this detect(), while a new one gets the new version."""
    model = line["model"]
    add_version(model, None, box_model(100, 100, tag="v2"))
    with running() as service, DetectionClient(str(service.base_url), line["key"]) as client:
        original = client.detect_batch
        calls: list[int] = []

        def then_move(*args: Any, **kwargs: Any) -> Any:
            answer = original(*args, **kwargs)
            calls.append(answer.model.version)
            if len(calls) == 1:
                registry.move_alias(model, None, "production", 2)
                deadline = time.monotonic() + 30
                while original([jpeg()], "panels").model.version != 2:  # the service took it
                    assert time.monotonic() < deadline, "the service never took the new alias"
                    time.sleep(0.05)
            return answer

        monkeypatch.setattr(client, "detect_batch", then_move)
        results = client.detect([jpeg(640, 640)] * 20, "panels")
        monkeypatch.undo()
        (after,) = client.detect([jpeg(640, 640)], "panels")
    assert calls == [1, 1]
    assert {(r.model.version, r.model.alias) for r in results if r.model} == {(1, "production")}
    assert {r.detections[0].box for r in results} == {results[0].detections[0].box}
    assert after.model is not None and after.model.version == 2
    assert after.detections[0].box != results[0].detections[0].box


@pytest.mark.parametrize("sign", [False, True])
def test_a_rate_limited_call_is_sent_again_after_retry_after(
    tenant: Tenant, line: dict[str, Any], sign: bool
) -> None:
    """One request a minute: the second call is answered 429 with Retry-After (about 60 s). The
    transport's ``sleep`` is replaced (so the test does not wait a minute): it records the wait
    asked for and, standing in for the minute passing, lifts the limit and waits out the
    service's cached limits (DEFECTLAB_INFERENCE_REFRESH_SECONDS, 0.1 s here). A signed call is
    signed anew for the retry: the service has seen the first attempt's nonce."""
    set_quota(tenant.organization, None, requests_per_minute=1)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        set_quota(tenant.organization, None, requests_per_minute=None)
        time.sleep(0.3)

    with (
        running() as service,
        DetectionClient(str(service.base_url), line["key"], sign=sign, sleep=sleep) as client,
    ):
        client.detect([jpeg()], "panels")
        (result,) = client.detect([jpeg()], "panels")
    assert result.ok and len(result.detections) == 1
    assert len(waits) == 1 and 50 <= waits[0] <= 60
    codes = list(Call.objects.order_by("id").values_list("status", "code"))
    assert codes == [(200, "ok"), (429, "rate_limited"), (200, "ok")]


def test_a_wait_longer_than_max_retry_wait_is_not_waited_for(
    tenant: Tenant, line: dict[str, Any]
) -> None:
    """The day's images are spent: the service asks to wait until midnight (UTC), more than
    ``max_retry_wait`` (set below one second, the shortest wait the service asks for, so the
    test holds at any time of day): raised at once, with ``retry_after``."""
    set_quota(tenant.organization, None, images_per_day=1)
    waits: list[float] = []
    with (
        running() as service,
        DetectionClient(
            str(service.base_url), line["key"], max_retry_wait=0.5, sleep=waits.append
        ) as client,
    ):
        client.detect([jpeg()], "panels")
        with pytest.raises(ApiError) as refused:
            client.detect([jpeg()], "panels")
    error = refused.value
    assert (error.status, error.code, waits) == (429, "daily_images", [])
    assert error.retry_after is not None and error.retry_after >= 1


def test_a_wrong_key_raises_invalid_key(line: dict[str, Any]) -> None:
    wrong = line["key"][:-4] + ("aaaa" if not line["key"].endswith("aaaa") else "bbbb")
    with running() as service:
        for sign in (False, True):
            with (
                DetectionClient(str(service.base_url), wrong, sign=sign) as client,
                pytest.raises(ApiError) as refused,
            ):
                client.detect([jpeg()], "panels")
            assert refused.value.status == 401
            assert refused.value.code == ("bad_signature" if sign else "invalid_key")
        unknown = "dlk_0000000000_" + "x" * 32
        with (
            DetectionClient(str(service.base_url), unknown, language="zh-hans") as client,
            pytest.raises(ApiError) as refused,
        ):
            client.detect([jpeg()], "panels")
    assert (refused.value.status, refused.value.code) == (401, "invalid_key")
    assert "密钥" in refused.value.message
    with pytest.raises(ValueError, match="dlk_"):
        DetectionClient("http://127.0.0.1:8090", "dl_a-personal-token")


def test_a_missing_file_is_said_before_anything_is_sent(
    line: dict[str, Any], tmp_path: Path
) -> None:
    """Nothing answers at the address: had the first 16 images been sent, the error would be
    ``unreachable``."""
    with (
        DetectionClient("http://127.0.0.1:9", line["key"], retries=0) as client,
        pytest.raises(FileNotFoundError, match=r"gone\.jpg"),
    ):
        client.detect([jpeg()] * 20 + [tmp_path / "gone.jpg"], "panels")


def test_a_refused_batch_says_what_was_answered_before_it(
    tenant: Tenant, line: dict[str, Any]
) -> None:
    set_quota(tenant.organization, None, images_per_day=20)
    images = [jpeg(200 + k, 200) for k in range(40)]
    with (
        running() as service,
        DetectionClient(str(service.base_url), line["key"]) as client,
        pytest.raises(ApiError) as refused,
    ):
        client.detect(images, "panels")
    error = refused.value
    assert error.code == "daily_images"
    assert [r.width for r in error.results] == [200 + k for k in range(16)]
    assert error.remaining == images[16:]


def test_a_service_that_is_not_there_is_tried_again_then_unreachable(line: dict[str, Any]) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    waits: list[float] = []
    with (
        DetectionClient(
            f"http://127.0.0.1:{port}", line["key"], retries=2, sleep=waits.append
        ) as client,
        pytest.raises(ApiError) as refused,
    ):
        client.detect([jpeg()], "panels")
    assert (refused.value.status, refused.value.code) == (0, "unreachable")
    assert len(waits) == 2  # the connection never opened: sent again, then given up


def test_the_command_prints_a_table_and_json_lines(line: dict[str, Any], tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg(640, 480))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    runner = CliRunner()
    with running() as service:
        env = {"DEFECTLAB_INFERENCE_URL": str(service.base_url), "DEFECTLAB_KEY": line["key"]}
        table = runner.invoke(main, ["detect", str(good), "--model", "panels"], env=env)
        signed = runner.invoke(
            main, ["detect", str(good), "--model", "panels", "--sign", "--json"], env=env
        )
        both = runner.invoke(
            main,
            ["detect", str(good), str(broken), "--model", "panels:1", "--json", "--conf", "0.5"],
            env=env,
        )
        nothing = runner.invoke(
            main, ["detect", str(good), "--model", "panels", "--classes", "dent"], env=env
        )
        missing = runner.invoke(main, ["detect", str(good), "--model", "nope"], env=env)
        no_key = runner.invoke(
            main, ["detect", str(good), "--model", "panels"], env={**env, "DEFECTLAB_KEY": ""}
        )
    assert table.exit_code == 0, table.output
    header, row = table.output.splitlines()
    assert header.split() == ["file", "class", "score", "box"]
    assert row.startswith(str(good)) and "scratch" in row and "0.900" in row
    assert "[280, 210, 360, 270]" in row
    assert signed.exit_code == 0, signed.output
    (answer,) = [json.loads(text) for text in signed.output.splitlines()]
    assert answer["file"] == str(good) and answer["index"] == 0
    assert answer["model"]["name"] == "panels" and answer["model"]["alias"] == "production"
    assert answer["detections"][0]["class"] == "scratch"
    assert both.exit_code == 1  # an image could not be read
    lines = [json.loads(text) for text in both.output.splitlines()]
    assert [item["index"] for item in lines] == [0, 1]
    assert lines[0]["model"]["version"] == 1 and lines[0]["model"]["alias"] is None
    assert lines[1]["file"] == str(broken) and lines[1]["error"]["code"] == "unreadable"
    assert nothing.exit_code == 0 and "(nothing found)" in nothing.output
    assert missing.exit_code == 1 and "model_not_found" in missing.output
    assert no_key.exit_code == 2 and "DEFECTLAB_KEY" in no_key.output


def test_the_sdk_docs_example_runs_against_the_service(
    line: dict[str, Any], tmp_path: Path
) -> None:
    """docs/sdk.md's example, as written, in a fresh interpreter without the server's settings."""
    from PIL import Image

    page = (ROOT / "docs" / "sdk.md").read_text()
    section = page[page.index("## Calling the detection service") :]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    (tmp_path / "example.py").write_text(code)
    (tmp_path / "a.jpg").write_bytes(jpeg(640, 480))
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    Image.new("RGB", (320, 320), (90, 90, 90)).save(tmp_path / "c.png")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DEFECTLAB"))}
    with running() as service:
        env |= {
            "PYTHONPATH": str(SOURCE),
            "DEFECTLAB_INFERENCE_URL": str(service.base_url),
            "DEFECTLAB_KEY": line["key"],
        }
        run = subprocess.run(
            [sys.executable, "example.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode == 0, run.stderr[-4000:]
    printed = run.stdout.splitlines()
    assert printed[0].startswith("a.jpg scratch 0.9 (28")
    assert printed[1].startswith("b.jpg unreadable ")
    assert printed[2].startswith("c.png scratch 0.9 ")
    assert len(printed) == 3
