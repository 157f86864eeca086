"""Per-token rpm and concurrency limits: in process, through Redis (two limiters = two processes), and
through a Redis that is down (per-process fallback, one log line, no failed request)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from types import SimpleNamespace

import limits.aio.storage.memory as limits_memory
import pytest

from gateway.auth.leases import RedisLeases
from gateway.auth.limits import Limiter, SharedLimits
from gateway.cluster.link import RedisLink
from gateway.domain import Caller
from gateway.errors import RateLimited
from gateway.settings import RedisSettings
from tests.redis_support import (
    DEAD_REDIS_URL,
    REDIS_URL,
    drop_prefix_async,
    redis_test,
    requires_redis,
    unique_prefix,
)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def caller(token_id: str = "tok_a", rpm: int | None = None, concurrency: int | None = None) -> Caller:
    return Caller(
        token_id=token_id,
        name=token_id,
        group="default",
        allowed_groups=(),
        models=None,
        chat_image_field=None,
        rpm_limit=rpm,
        max_concurrency=concurrency,
        quota_micro_usd=None,
        used_micro_usd=0,
        expires_at=None,
        key_hash="h",
    )


async def refused(limiter: Limiter, who: Caller) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        await limiter.acquire(who)
    err = info.value
    assert (err.status, err.type, err.code) == (429, "rate_limit_error", "rate_limit_exceeded")
    return err


def retry_after(err: RateLimited) -> int:
    assert err.headers is not None
    return int(err.headers["Retry-After"])


class Nodes:
    """Limiters that share one Redis prefix behave like limiters in separate processes."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url, self.prefix = url, prefix
        self.links: list[RedisLink] = []
        self.limiters: list[Limiter] = []

    def limiter(self) -> Limiter:
        link = RedisLink(RedisSettings(url=self.url, key_prefix=self.prefix))
        limiter = Limiter(SharedLimits.over(link))
        limiter.start()
        self.links.append(link)
        self.limiters.append(limiter)
        return limiter

    async def close(self) -> None:
        for limiter in self.limiters:
            await limiter.close()
        for link in self.links:
            await link.close()


@pytest.fixture
async def nodes() -> AsyncIterator[Nodes]:
    assert REDIS_URL
    prefix = unique_prefix()
    group = Nodes(REDIS_URL, prefix)
    yield group
    await group.close()
    await drop_prefix_async(prefix)


@pytest.fixture(params=["memory", pytest.param("redis", marks=requires_redis)])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Limiter]:
    if request.param == "memory":
        made = Limiter()
        yield made
        await made.close()
    else:
        assert REDIS_URL
        prefix = unique_prefix()
        group = Nodes(REDIS_URL, prefix)
        yield group.limiter()
        await group.close()
        await drop_prefix_async(prefix)


# -- behaviour every backend shares ---------------------------------------------------------------


async def test_no_limits_never_refuse_and_owe_no_release(limiter: Limiter) -> None:
    for _ in range(200):
        assert await limiter.acquire(caller()) is False


async def test_rpm_counts_exactly_and_says_when_to_retry(limiter: Limiter) -> None:
    who = caller(rpm=3)
    for _ in range(3):
        assert await limiter.acquire(who) is False
    err = await refused(limiter, who)
    assert "3 requests per minute" in err.message
    assert 1 <= retry_after(err) <= 60


async def test_rpm_is_per_token(limiter: Limiter) -> None:
    a, b = caller("a", rpm=1), caller("b", rpm=1)
    await limiter.acquire(a)
    await limiter.acquire(b)
    await refused(limiter, a)
    await refused(limiter, b)


async def test_concurrency_acquire_and_release(limiter: Limiter) -> None:
    who = caller(concurrency=2)
    assert await limiter.acquire(who) is True
    assert await limiter.acquire(who) is True
    err = await refused(limiter, who)
    assert retry_after(err) == 1
    assert "2 requests in flight" in err.message
    limiter.release(who)
    assert await limiter.acquire(who) is True
    await refused(limiter, who)
    limiter.release(who)
    limiter.release(who)
    assert await limiter.acquire(who) is True
    assert await limiter.acquire(who) is True


async def test_concurrency_is_per_token(limiter: Limiter) -> None:
    a, b = caller("a", concurrency=1), caller("b", concurrency=1)
    await limiter.acquire(a)
    assert await limiter.acquire(b) is True
    await refused(limiter, a)


async def test_extra_release_does_not_grant_extra_slots(limiter: Limiter) -> None:
    who = caller(concurrency=1)
    limiter.release(who)
    limiter.release(who)
    await limiter.acquire(who)
    await refused(limiter, who)


async def test_limits_follow_the_callers_current_values(limiter: Limiter) -> None:
    who = caller(rpm=1)
    await limiter.acquire(who)
    await refused(limiter, who)
    await limiter.acquire(replace(who, rpm_limit=2))  # limit raised by an admin


async def test_concurrency_refusal_does_not_count_against_rpm(limiter: Limiter) -> None:
    who = caller(rpm=2, concurrency=1)
    assert await limiter.acquire(who) is True
    await refused(limiter, who)  # concurrency
    limiter.release(who)
    assert await limiter.acquire(who) is True  # the second request of this minute


async def test_rpm_refusal_gives_the_slot_back(limiter: Limiter) -> None:
    who = caller(rpm=1, concurrency=1)
    assert await limiter.acquire(who) is True
    limiter.release(who)
    await refused(limiter, who)  # the minute is used up; the slot it took must come back
    more = replace(who, rpm_limit=5)
    assert await limiter.acquire(more) is True


# -- in process: a moving window, on the limits library's clock ---------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(120.0)
    monkeypatch.setattr(limits_memory, "time", SimpleNamespace(time=fake))
    return fake


async def test_memory_window_moves_and_retry_after_counts_down(clock: Clock) -> None:
    limiter = Limiter(clock=clock)
    who = caller(rpm=2)
    await limiter.acquire(who)  # t=120
    clock.now = 150.0
    await limiter.acquire(who)  # t=150
    assert retry_after(await refused(limiter, who)) == 30  # the first frees at 180
    clock.now = 179.5
    assert retry_after(await refused(limiter, who)) == 1
    clock.now = 180.5  # the first aged out; the second (t=150) still counts
    await limiter.acquire(who)
    assert retry_after(await refused(limiter, who)) == 30  # a fixed window would have allowed two
    clock.now = 240.5
    await limiter.acquire(who)
    await limiter.close()


async def test_memory_refused_requests_are_not_counted(clock: Clock) -> None:
    limiter = Limiter(clock=clock)
    who = caller(rpm=1)
    await limiter.acquire(who)
    for _ in range(5):
        await refused(limiter, who)
    clock.now += 60.5
    await limiter.acquire(who)
    await limiter.close()


# -- through Redis: limiters standing for different processes -------------------------------------


@redis_test
async def test_rpm_holds_across_processes(nodes: Nodes) -> None:
    a, b = nodes.limiter(), nodes.limiter()
    who = caller(rpm=5)
    admitted = 0
    for i in range(10):
        try:
            await (a if i % 2 else b).acquire(who)
            admitted += 1
        except RateLimited:
            pass
    assert admitted == 5


@redis_test
async def test_concurrency_holds_across_processes(nodes: Nodes) -> None:
    a, b = nodes.limiter(), nodes.limiter()
    who = caller(concurrency=2)
    assert await a.acquire(who) is True
    assert await b.acquire(who) is True
    await refused(a, who)
    await refused(b, who)
    a.release(who)
    await a.settle()
    assert await b.acquire(who) is True  # a's slot came back for everyone
    await refused(a, who)


@redis_test
async def test_a_dead_processs_leases_expire_and_live_ones_are_renewed(nodes: Nodes) -> None:
    assert REDIS_URL
    link = RedisLink(RedisSettings(url=REDIS_URL, key_prefix=nodes.prefix))
    nodes.links.append(link)
    leases = RedisLeases(link.client, link.key("inflight:"), link.outage, ttl_seconds=30)
    key = link.key("inflight:tok_a")
    dead = await leases.acquire("tok_a", 2)
    live = await leases.acquire("tok_a", 2)
    assert dead and live
    assert await leases.acquire("tok_a", 2) is None
    # The process holding `dead` stopped renewing it long ago: its expiry is in the past.
    leases._held.pop(dead)
    await link.client.zadd(key, {dead: 1, live: 1})
    await leases.renew()  # renews only what this process still holds
    assert (await link.client.zscore(key, live) or 0) > 1
    third = await leases.acquire("tok_a", 2)  # the expired lease was dropped, its slot reused
    assert third is not None
    assert set(await link.client.zrange(key, 0, -1)) == {live.encode(), third.encode()}


# -- Redis down ------------------------------------------------------------------------------------


async def test_redis_down_falls_back_to_per_process_limits_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    link = RedisLink(RedisSettings(url=DEAD_REDIS_URL, timeout_seconds=0.5))
    limiter = Limiter(SharedLimits.over(link))
    who = caller(rpm=3, concurrency=5)
    with caplog.at_level("WARNING", logger="gateway.cluster"):
        for _ in range(3):
            assert await limiter.acquire(who) is True
        await refused(limiter, who)  # still limited: per process now
    assert sum("Redis unavailable" in r.getMessage() for r in caplog.records) == 1
    await limiter.close()
    await link.close()


async def test_no_limit_path_never_touches_redis() -> None:
    link = RedisLink(RedisSettings(url=DEAD_REDIS_URL))
    limiter = Limiter(SharedLimits.over(link))
    for _ in range(100):
        assert await limiter.acquire(caller()) is False
    assert not link.outage.down  # a single attempted call would have failed and said so
    await limiter.close()
    await link.close()
