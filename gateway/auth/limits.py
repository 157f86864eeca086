"""Per-token requests-per-minute and concurrency limits (§6.3).

With `redis.url` they hold across every process: requests per minute are a moving window kept by the
`limits` library in Redis, concurrency slots are leases (auth/leases.py). Without Redis, the same limits
hold within the process (`limits`' in-memory storage and a counter). While Redis is down they fall back
to per-process limits, with a log line and without failing a request. A token with neither limit costs
nothing: no storage is touched.

A refused request costs nothing either: a concurrency refusal is not counted against the minute, and a
request refused by the minute gives its slot back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from gateway.auth.leases import RedisLeases
from gateway.cluster.link import REDIS_ERRORS, Outage, RedisLink
from gateway.domain import Caller
from gateway.errors import RateLimited


@lru_cache(maxsize=1024)
def per_minute(limit: int) -> RateLimitItem:
    return RateLimitItemPerMinute(limit)


def _rpm_refused(limit: int, retry_after: int) -> RateLimited:
    return RateLimited(
        f"Rate limit reached: {limit} requests per minute.", headers={"Retry-After": str(retry_after)}
    )


def _concurrency_refused(limit: int) -> RateLimited:
    return RateLimited(
        f"Concurrency limit reached: {limit} requests in flight.", headers={"Retry-After": "1"}
    )


@dataclass
class SharedLimits:
    rpm: MovingWindowRateLimiter
    leases: RedisLeases
    outage: Outage

    @classmethod
    def over(cls, link: RedisLink) -> SharedLimits:
        scheme, sep, rest = link.url.partition("://")
        uri = f"async+{'redis+unix' if scheme == 'unix' else scheme}{sep}{rest}"
        # The library takes the pool among its client options, typed as scalars: hence the ignore.
        storage = RedisStorage(
            uri,
            implementation="redispy",
            key_prefix=link.key("rpm"),
            connection_pool=link.pool,  # type: ignore[arg-type]
        )
        leases = RedisLeases(link.client, link.key("inflight:"), link.outage)
        return cls(MovingWindowRateLimiter(storage), leases, link.outage)


class Limiter:
    def __init__(self, shared: SharedLimits | None = None, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock  # wall time, as the `limits` storages keep it
        self._memory = MemoryStorage()
        self._local_rpm = MovingWindowRateLimiter(self._memory)
        self._in_flight: dict[str, int] = {}  # slots taken in process, per token
        self._held: dict[str, list[str | None]] = {}  # per token: a Redis lease id, or None (in process)
        self._shared = shared

    async def acquire(self, caller: Caller) -> bool:
        """Count one request; raise RateLimited when over a limit. True if release() is owed."""
        if caller.rpm_limit is None and caller.max_concurrency is None:
            return False
        shared = self._shared
        if shared is not None and shared.outage.usable():
            try:
                lease = await self._acquire_shared(shared, caller)
            except REDIS_ERRORS as exc:
                shared.outage.failed("rate limits", exc)
            else:
                shared.outage.ok()
                if caller.max_concurrency is None:
                    return False
                self._held.setdefault(caller.token_id, []).append(lease)
                return True
        return await self._acquire_local(caller)

    async def _acquire_shared(self, shared: SharedLimits, caller: Caller) -> str | None:
        lease = None
        if caller.max_concurrency is not None:
            lease = await shared.leases.acquire(caller.token_id, caller.max_concurrency)
            if lease is None:
                raise _concurrency_refused(caller.max_concurrency)
        if caller.rpm_limit is not None:
            try:
                await self._hit(shared.rpm, caller.token_id, caller.rpm_limit)
            except BaseException:
                if lease is not None:
                    shared.leases.release(lease)
                raise
        return lease

    async def _acquire_local(self, caller: Caller) -> bool:
        token, limit = caller.token_id, caller.max_concurrency
        in_flight = self._in_flight.get(token, 0)
        if limit is not None:
            if in_flight >= limit:
                raise _concurrency_refused(limit)
            self._in_flight[token] = in_flight + 1  # taken before the await below: no overshoot
        if caller.rpm_limit is not None:
            try:
                await self._hit(self._local_rpm, token, caller.rpm_limit)
            except BaseException:
                if limit is not None:
                    self._give_back_local(token)
                raise
        if limit is None:
            return False
        self._held.setdefault(token, []).append(None)
        return True

    async def _hit(self, limiter: MovingWindowRateLimiter, token: str, limit: int) -> None:
        item = per_minute(limit)
        if await limiter.hit(item, token):
            return
        stats = await limiter.get_window_stats(item, token)
        raise _rpm_refused(limit, max(1, math.ceil(stats.reset_time - self._clock())))

    def release(self, caller: Caller) -> None:
        """Give back one slot of the caller's token (slots of one token are interchangeable)."""
        held = self._held.get(caller.token_id)
        if not held:
            return  # nothing owed: an extra release grants nothing
        lease = held.pop()
        if not held:
            del self._held[caller.token_id]
        if lease is None:
            self._give_back_local(caller.token_id)
        elif self._shared is not None:
            self._shared.leases.release(lease)

    def _give_back_local(self, token: str) -> None:
        left = self._in_flight.get(token, 1) - 1
        if left > 0:
            self._in_flight[token] = left
        else:
            self._in_flight.pop(token, None)

    async def settle(self) -> None:
        """Wait until the slots released so far are free for every process (shutdown, tests)."""
        if self._shared is not None:
            await self._shared.leases.settle()

    def start(self) -> None:
        if self._shared is not None:
            self._shared.leases.start()

    async def close(self) -> None:
        if self._shared is not None:
            await self._shared.leases.close()
        timer = self._memory.timer  # the in-memory storage's expiry sweep
        if timer is not None and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
