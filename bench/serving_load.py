"""The detection service bench's load generator: a process of its own (no Django), driving
`POST /v1/detect` over loopback with httpx on asyncio. `bench/serving.py` starts it.

    python bench/serving_load.py SPEC.json OUT.json

SPEC names the service's address and one stream: its key, model, JPEG files (read into
memory before the clock starts: every request's body is one of them, sent as is with
``Content-Type: image/jpeg``), and either

* ``closed``: ``concurrency`` requests in flight, each sent as the one before it ends, until
  ``count`` are answered or ``seconds`` have passed (``warmup`` more before, marked as such);
* ``open``: one request every 1/``rate`` s, whatever the answers, for ``seconds`` (at most
  ``count``), each waited for to its end.

``start_at`` (a wall-clock time) lets several generators begin together. OUT gets one record
per request — image, status, latency, the answer's model version and timings (and, with
``keep``, its detections) — and the process's own CPU time. Nothing is retried; a request
that gets no answer is recorded with status 0 and its error.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import httpx

perf = time.perf_counter


def _record(index: int, image: int, warm: bool, start: float, origin: float) -> dict[str, Any]:
    return {"i": index, "image": image, "warm": warm, "t": round(start - origin, 4)}


def _read(answer: httpx.Response, record: dict[str, Any], keep: bool) -> None:
    record["status"] = answer.status_code
    body = answer.json()
    if answer.status_code != 200:
        record["code"] = body.get("error", {}).get("code", "")
        return
    model = body["model"]
    result = body["results"][0]
    record["version"] = model["version"]
    record["sha256"] = model["sha256"]
    record["found"] = sum(len(r.get("detections", ())) for r in body["results"])
    record["images"] = len(body["results"])
    record["queue_ms"] = body["timings"]["queue_ms"]
    record["total_ms"] = body["timings"]["total_ms"]
    record["engine"] = result.get("timings")
    if "error" in result:
        record["code"] = result["error"]["code"]
    if keep:
        record["detections"] = [
            [d["class_id"], d["score"], d["box"]] for d in result.get("detections", ())
        ]


async def _one(
    client: httpx.AsyncClient,
    stream: dict[str, Any],
    bodies: list[bytes],
    index: int,
    warm: bool,
    origin: float,
) -> dict[str, Any]:
    image = index % len(bodies)
    start = perf()
    record = _record(index, image, warm, start, origin)
    try:
        answer = await client.post(
            "/v1/detect",
            params={"model": stream["model"]},
            content=bodies[image],
            headers={"Content-Type": "image/jpeg"},
        )
        record["latency"] = perf() - start
        _read(answer, record, bool(stream.get("keep")))
    except (httpx.HTTPError, ValueError, KeyError) as error:
        record["latency"] = perf() - start
        record["status"] = 0
        record["error"] = f"{type(error).__name__}: {error}"[:300]
    return record


async def _closed(
    client: httpx.AsyncClient, stream: dict[str, Any], bodies: list[bytes]
) -> tuple[list[dict[str, Any]], float, float]:
    records: list[dict[str, Any]] = []
    origin = perf()
    warmup = int(stream.get("warmup", 0))
    concurrency = int(stream["concurrency"])
    counter = iter(range(10**9))

    async def worker(limit: int, warm: bool, deadline: float) -> None:
        for index in counter:
            if index >= limit or perf() > deadline:
                return
            records.append(await _one(client, stream, bodies, index, warm, origin))

    if warmup:
        await asyncio.gather(*(worker(warmup, True, float("inf")) for _ in range(concurrency)))
        counter = iter(range(warmup, 10**9))
    begin = perf()
    deadline = begin + float(stream["seconds"])
    limit = warmup + int(stream["count"])
    await asyncio.gather(*(worker(limit, False, deadline) for _ in range(concurrency)))
    return records, begin - origin, perf() - origin


async def _open(
    client: httpx.AsyncClient, stream: dict[str, Any], bodies: list[bytes]
) -> tuple[list[dict[str, Any]], float, float]:
    origin = perf()
    interval = 1.0 / float(stream["rate"])
    seconds, count = float(stream["seconds"]), int(stream["count"])
    tasks: list[asyncio.Task[dict[str, Any]]] = []
    index = 0
    while index < count and index * interval < seconds:
        delay = origin + index * interval - perf()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(client, stream, bodies, index, False, origin)))
        index += 1
    records = list(await asyncio.gather(*tasks))
    return records, 0.0, perf() - origin


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    stream = spec["stream"]
    bodies = [Path(path).read_bytes() for path in stream["images"]]
    in_flight = int(stream.get("concurrency", 64)) if stream["mode"] == "closed" else 256
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    headers = {"Authorization": f"Bearer {stream['key']}"}
    async with httpx.AsyncClient(
        base_url=spec["url"], headers=headers, limits=limits, timeout=float(spec["timeout"])
    ) as client:
        if spec.get("start_at"):
            await asyncio.sleep(max(0.0, float(spec["start_at"]) - time.time()))
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        driver = _closed if stream["mode"] == "closed" else _open
        records, begin, end = await driver(client, stream, bodies)
        after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "name": stream["name"],
        "records": sorted(records, key=lambda r: r["i"]),
        "timed_from": begin,
        "timed_to": end,
        "cpu_seconds": (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    try:
        import uvloop  # the service's own loop (uvicorn's, when installed): less CPU per request

        out = uvloop.run(run(spec))
    except ImportError:
        out = asyncio.run(run(spec))
    Path(argv[1]).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
