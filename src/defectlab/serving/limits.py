"""Counting against an organization's quota, and remembering signed requests' nonces: in this
process (`LocalCounters`), or in Redis so that every replica counts together
(`RedisCounters`, when DEFECTLAB_REDIS_URL is set).

- requests per minute: a token bucket holding ten seconds' worth (at least one request), refilled
  continuously; an empty bucket answers 429 with the seconds until the next token;
- requests in progress at once: a lease per request (Redis: expiring after `LEASE_SECONDS`, so a
  replica that dies does not hold its leases for ever);
- images per UTC day: counted when a request is admitted with its images;
- nonces: a nonce is accepted once within the signature window.

If Redis stops answering, counting falls back to this process until it answers again (checked
every `RETRY_SECONDS`): the service keeps serving, and each replica holds its own count meanwhile.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from defectlab.serving.quotas import Limits

log = logging.getLogger(__name__)

BURST_SECONDS = 10
LEASE_SECONDS = 300
RETRY_SECONDS = 5
PREFIX = "defectlab:serving:"


@dataclass(frozen=True, slots=True)
class OverQuota(Exception):
    """A refusal: ``code`` says which limit, ``retry_after`` how many seconds to wait."""

    code: str
    retry_after: int
    limit: int


def burst(per_minute: int) -> int:
    return max(1, per_minute * BURST_SECONDS // 60)


def seconds_to_midnight(now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((midnight - now).total_seconds()))


def today() -> str:
    return datetime.now(UTC).strftime("%Y%m%d")


class Counters(Protocol):
    async def admit(self, organization: int, limits: Limits, request_id: str) -> None: ...
    async def count_images(self, organization: int, limits: Limits, images: int) -> None: ...
    async def release(self, organization: int, request_id: str) -> None: ...
    async def first_use(self, key_id: str, nonce: str, seconds: int) -> bool: ...


class LocalCounters:
    """This process's counts. Used from the event loop's thread only."""

    def __init__(self) -> None:
        self._buckets: dict[int, tuple[float, float]] = {}  # tokens, when
        self._running: dict[int, set[str]] = {}
        self._days: dict[int, tuple[str, int]] = {}
        self._nonces: dict[tuple[str, str], float] = {}
        self._purged = 0.0

    async def admit(self, organization: int, limits: Limits, request_id: str) -> None:
        running = self._running.setdefault(organization, set())
        if limits.concurrent_requests is not None and len(running) >= limits.concurrent_requests:
            raise OverQuota("too_many_concurrent", 1, limits.concurrent_requests)
        if limits.requests_per_minute is not None:
            rate = limits.requests_per_minute / 60.0
            full = float(burst(limits.requests_per_minute))
            now = time.monotonic()
            tokens, then = self._buckets.get(organization, (full, now))
            tokens = min(full, tokens + (now - then) * rate)
            if tokens < 1.0:
                self._buckets[organization] = (tokens, now)
                raise OverQuota(
                    "rate_limited",
                    max(1, math.ceil((1.0 - tokens) / rate)),
                    limits.requests_per_minute,
                )
            self._buckets[organization] = (tokens - 1.0, now)
        running.add(request_id)

    async def count_images(self, organization: int, limits: Limits, images: int) -> None:
        day = today()
        counted_day, counted = self._days.get(organization, (day, 0))
        if counted_day != day:
            counted = 0
        if limits.images_per_day is not None and counted + images > limits.images_per_day:
            raise OverQuota("daily_images", seconds_to_midnight(), limits.images_per_day)
        self._days[organization] = (day, counted + images)

    async def release(self, organization: int, request_id: str) -> None:
        self._running.get(organization, set()).discard(request_id)

    async def first_use(self, key_id: str, nonce: str, seconds: int) -> bool:
        now = time.monotonic()
        if now - self._purged > 1.0:
            self._nonces = {k: until for k, until in self._nonces.items() if until > now}
            self._purged = now
        if self._nonces.get((key_id, nonce), 0.0) > now:
            return False
        self._nonces[(key_id, nonce)] = now + seconds
        return True


# Rate and concurrency in one step, on Redis's clock (replicas' clocks may differ).
# KEYS: bucket, running. ARGV: per-ms rate, burst (0: none), concurrent (0: none), request id,
# lease ms. Answers {0, 0}, or {1, seconds} (too many at once), or {2, seconds} (rate).
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, full, most = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if most > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= most then return {1, 1} end
end
if full > 0 then
  local b = redis.call('HMGET', KEYS[1], 't', 'ts')
  local tokens = tonumber(b[1]) or full
  local ts = tonumber(b[2]) or now
  tokens = math.min(full, tokens + math.max(0, now - ts) * rate)
  if tokens < 1 then
    redis.call('HSET', KEYS[1], 't', tokens, 'ts', now)
    return {2, math.ceil((1 - tokens) / rate / 1000)}
  end
  redis.call('HSET', KEYS[1], 't', tokens - 1, 'ts', now)
  redis.call('PEXPIRE', KEYS[1], math.ceil(full / rate) + 1000)
end
if most > 0 then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[4])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[5]))
end
return {0, 0}
"""

# KEYS: the day's counter. ARGV: images, limit (0: none). Answers the count, or -1 if over.
_IMAGES = """
local counted = tonumber(redis.call('GET', KEYS[1]) or '0')
local limit = tonumber(ARGV[2])
if limit > 0 and counted + tonumber(ARGV[1]) > limit then return -1 end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], 172800)
return counted + tonumber(ARGV[1])
"""


class RedisCounters:
    """Counts shared by every replica through one Redis; this process's counts while it is down."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis: Any = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._admit = self._redis.register_script(_ADMIT)
        self._images = self._redis.register_script(_IMAGES)
        self._local = LocalCounters()
        self._down_until = 0.0
        # Leases whose release did not reach Redis: released when it answers again, rather than
        # holding the organization's places until they expire (LEASE_SECONDS).
        self._unreleased: list[tuple[int, str]] = []

    async def _call(self, what: str, *args: Any) -> Any:
        import redis.exceptions

        if time.monotonic() < self._down_until:
            return None
        try:
            if what == "admit":
                return await self._admit(keys=args[0], args=args[1])
            if what == "images":
                return await self._images(keys=args[0], args=args[1])
            if what == "release":
                return await self._redis.zrem(*args)
            return await self._redis.set(*args[:2], nx=True, ex=args[2])
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
            log.warning("Redis is not answering (%s): counting in this process for now", error)
            self._down_until = time.monotonic() + RETRY_SECONDS
            return None

    async def admit(self, organization: int, limits: Limits, request_id: str) -> None:
        if self._unreleased and time.monotonic() >= self._down_until:
            pending, self._unreleased = self._unreleased, []
            for owner, lease in pending:
                await self.release(owner, lease)
        per_minute = limits.requests_per_minute or 0
        args = [
            per_minute / 60000.0,
            burst(per_minute) if per_minute else 0,
            limits.concurrent_requests or 0,
            request_id,
            LEASE_SECONDS * 1000,
        ]
        keys = [f"{PREFIX}rate:{organization}", f"{PREFIX}running:{organization}"]
        answer = await self._call("admit", keys, args)
        if answer is None:
            return await self._local.admit(organization, limits, request_id)
        outcome, seconds = int(answer[0]), int(answer[1])
        if outcome == 1:
            raise OverQuota("too_many_concurrent", max(1, seconds), limits.concurrent_requests or 0)
        if outcome == 2:
            raise OverQuota("rate_limited", max(1, seconds), per_minute)

    async def count_images(self, organization: int, limits: Limits, images: int) -> None:
        keys = [f"{PREFIX}images:{organization}:{today()}"]
        answer = await self._call("images", keys, [images, limits.images_per_day or 0])
        if answer is None:
            return await self._local.count_images(organization, limits, images)
        if int(answer) < 0:
            raise OverQuota("daily_images", seconds_to_midnight(), limits.images_per_day or 0)

    async def release(self, organization: int, request_id: str) -> None:
        await self._local.release(organization, request_id)
        answer = await self._call("release", f"{PREFIX}running:{organization}", request_id)
        if answer is None and len(self._unreleased) < 100_000:
            self._unreleased.append((organization, request_id))

    async def first_use(self, key_id: str, nonce: str, seconds: int) -> bool:
        answer = await self._call("nonce", f"{PREFIX}nonce:{key_id}:{nonce}", 1, seconds)
        if answer is None and time.monotonic() < self._down_until:
            return await self._local.first_use(key_id, nonce, seconds)
        return bool(answer)

    async def close(self) -> None:
        await self._redis.aclose()


def counters(redis_url: str) -> LocalCounters | RedisCounters:
    return RedisCounters(redis_url) if redis_url else LocalCounters()
