import asyncio
import gc
import random
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import cast

import pytest

from gateway.domain import Attempt, Target
from gateway.errors import NoAvailableChannel, UpstreamError, UpstreamTimeout
from gateway.pipeline.attempts import next_target, with_failover
from gateway.routing.health import Health
from gateway.routing.policy import Decision
from gateway.runtime import Runtime
from gateway.settings import ChannelSettings, RetrySettings, Settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def channel(name: str, *, keys: int = 1, priority: int = 0) -> ChannelSettings:
    return ChannelSettings.model_validate(
        {
            "name": name,
            "kind": "openai",
            "base_url": "https://upstream.invalid/v1",
            "api_keys": [f"key-{name}-{i}" for i in range(keys)],
            "models": ["m"],
            "priority": priority,
        }
    )


def runtime(retry: RetrySettings | None = None, clock: Clock | None = None) -> Runtime:
    settings = Settings(retry=retry or RetrySettings())
    health = Health(settings.retry, clock=clock or Clock())
    return cast(Runtime, SimpleNamespace(settings=settings, rng=random.Random(0), health=health))


class FakeUpstream:
    """Answers each (channel, key index) with a scripted error, or success."""

    def __init__(
        self, script: Mapping[tuple[str, int], UpstreamError] | None = None, delay: float = 0
    ) -> None:
        self.script = dict(script or {})
        self.calls: list[tuple[str, int]] = []
        self.delay = delay

    async def __call__(self, target: Target) -> str:
        where = (target.channel.name, target.key_index)
        self.calls.append(where)
        if self.delay:
            await asyncio.sleep(self.delay)
        error = self.script.get(where)
        if error is not None:
            raise error
        return f"ok from {where[0]}#{where[1]} with {target.api_key}"


def cooling(seconds: float) -> object:
    return ("cooling", pytest.approx(seconds))


def err(upstream_status: int | None, **kw: object) -> UpstreamError:
    return UpstreamError(f"upstream {upstream_status}", upstream_status=upstream_status, **kw)  # type: ignore[arg-type]


async def run(
    rt: Runtime, channels: list[ChannelSettings], call: Callable[[Target], Awaitable[str]]
) -> tuple[str, Target, list[Attempt]]:
    attempts: list[Attempt] = []
    result, target = await with_failover(rt, channels, attempts, call)
    return result, target, attempts


def statuses(attempts: list[Attempt]) -> list[tuple[str, int, int | str]]:
    return [(a.channel, a.key_index, a.status) for a in attempts]


async def test_first_candidate_succeeds() -> None:
    rt = runtime()
    upstream = FakeUpstream()
    result, target, attempts = await run(rt, [channel("a", priority=1), channel("b")], upstream)
    assert result == "ok from a#0 with key-a-0"
    assert (target.channel.name, target.key_index) == ("a", 0)
    assert statuses(attempts) == [("a", 0, 200)]


async def test_500_rules_out_the_whole_channel() -> None:
    rt = runtime()
    a, b = channel("a", keys=2, priority=2), channel("b", priority=1)
    upstream = FakeUpstream({("a", 0): err(500), ("a", 1): err(500)})
    result, target, attempts = await run(rt, [a, b], upstream)
    assert upstream.calls == [("a", 0), ("b", 0)]  # a's second key is never tried
    assert target.channel.name == "b"
    assert statuses(attempts) == [("a", 0, 500), ("b", 0, 200)]


async def test_failed_channel_never_retried_when_all_fail() -> None:
    rt = runtime(RetrySettings(max_attempts=5))
    a, b = channel("a", keys=3, priority=2), channel("b", priority=1)
    upstream = FakeUpstream({("a", i): err(502) for i in range(3)} | {("b", 0): err(503)})
    with pytest.raises(UpstreamError) as info:
        await run(rt, [a, b], upstream)
    assert upstream.calls == [("a", 0), ("b", 0)]
    assert info.value.upstream_status == 503  # the last error is raised


async def test_429_moves_to_the_next_key_of_the_same_channel() -> None:
    rt = runtime()
    a, b = channel("a", keys=2, priority=2), channel("b", priority=1)
    upstream = FakeUpstream({("a", 0): err(429, retry_after=5)})
    result, target, attempts = await run(rt, [a, b], upstream)
    assert statuses(attempts) == [("a", 0, 429), ("a", 1, 200)]
    assert result == "ok from a#1 with key-a-1"
    assert rt.health.state("a", 0) == cooling(5.0)
    assert rt.health.state("a", 1) == ("ok", None)


async def test_429_key_is_skipped_by_later_requests_while_cooling() -> None:
    clock = Clock()
    rt = runtime(clock=clock)
    a = channel("a", keys=2)
    await run(rt, [a], FakeUpstream({("a", 0): err(429, retry_after=10)}))
    for _ in range(4):  # round robin would start at key 0 every other time
        _, target, _ = await run(rt, [a], FakeUpstream())
        assert target.key_index == 1
    clock.now += 10
    seen = {(await run(rt, [a], FakeUpstream()))[1].key_index for _ in range(4)}
    assert seen == {0, 1}


async def test_a_failed_key_is_not_reused_in_the_same_request_even_without_cooldown() -> None:
    rt = runtime(RetrySettings(max_attempts=5, cooldown_seconds=0))
    a = channel("a", keys=2)
    upstream = FakeUpstream({("a", 0): err(429, retry_after=0), ("a", 1): err(429)})
    with pytest.raises(UpstreamError):
        await run(rt, [a], upstream)
    assert upstream.calls == [("a", 0), ("a", 1)]
    assert rt.health.available("a", 0) and rt.health.available("a", 1)  # no rest, only not reused


async def test_401_disables_the_key_for_later_requests() -> None:
    rt = runtime()
    a = channel("a", keys=2)
    upstream = FakeUpstream({("a", 0): err(401)})
    _, target, attempts = await run(rt, [a], upstream)
    assert statuses(attempts) == [("a", 0, 401), ("a", 1, 200)]
    assert rt.health.state("a", 0) == ("disabled", None)
    upstream.calls.clear()
    for _ in range(4):
        _, target, attempts = await run(rt, [a], upstream)
        assert statuses(attempts) == [("a", 1, 200)]
    assert ("a", 0) not in upstream.calls


async def test_403_on_the_only_key_falls_over_to_another_channel() -> None:
    rt = runtime()
    a, b = channel("a", priority=1), channel("b")
    _, target, attempts = await run(rt, [a, b], FakeUpstream({("a", 0): err(403)}))
    assert statuses(attempts) == [("a", 0, 403), ("b", 0, 200)]
    assert rt.health.state("a", 0) == ("disabled", None)


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_client_error_raises_at_once(status: int) -> None:
    rt = runtime()
    a, b = channel("a", keys=2, priority=1), channel("b")
    upstream = FakeUpstream({("a", 0): err(status, status=status, code="invalid_value")})
    attempts: list[Attempt] = []
    with pytest.raises(UpstreamError) as info:
        await with_failover(rt, [a, b], attempts, upstream)
    assert upstream.calls == [("a", 0)]
    assert info.value.status == status
    assert statuses(attempts) == [("a", 0, status)]
    assert rt.health.state("a", 0) == ("ok", None)


async def test_timeout_after_send_is_not_retried() -> None:
    rt = runtime()
    a, b = channel("a", priority=1), channel("b")
    upstream = FakeUpstream({("a", 0): UpstreamTimeout("slow", sent=True)})
    attempts: list[Attempt] = []
    with pytest.raises(UpstreamTimeout):
        await with_failover(rt, [a, b], attempts, upstream)
    assert upstream.calls == [("a", 0)]
    assert statuses(attempts) == [("a", 0, "upstream_timeout")]


async def test_timeout_after_send_retried_when_configured() -> None:
    rt = runtime(RetrySettings(retry_on_timeout=True))
    a, b = channel("a", priority=1), channel("b")
    upstream = FakeUpstream({("a", 0): UpstreamTimeout("slow", sent=True)})
    _, target, _ = await run(rt, [a, b], upstream)
    assert upstream.calls == [("a", 0), ("b", 0)]


async def test_connection_error_moves_on_and_records_the_code() -> None:
    rt = runtime()
    a, b = channel("a", keys=2, priority=1), channel("b")
    connect = UpstreamError("refused", upstream_status=None, code="upstream_unreachable")
    upstream = FakeUpstream({("a", 0): connect})
    _, _, attempts = await run(rt, [a, b], upstream)
    assert statuses(attempts) == [("a", 0, "upstream_unreachable"), ("b", 0, 200)]


async def test_max_attempts_bounds_the_loop() -> None:
    rt = runtime(RetrySettings(max_attempts=3))
    channels = [channel(f"c{i}", priority=10 - i) for i in range(6)]
    upstream = FakeUpstream({(f"c{i}", 0): err(503) for i in range(6)})
    attempts: list[Attempt] = []
    with pytest.raises(UpstreamError) as info:
        await with_failover(rt, channels, attempts, upstream)
    assert upstream.calls == [("c0", 0), ("c1", 0), ("c2", 0)]
    assert len(attempts) == 3
    assert info.value.upstream_status == 503


async def test_max_attempts_one_means_no_failover() -> None:
    rt = runtime(RetrySettings(max_attempts=1))
    upstream = FakeUpstream({("a", 0): err(500)})
    with pytest.raises(UpstreamError):
        await run(rt, [channel("a", priority=1), channel("b")], upstream)
    assert upstream.calls == [("a", 0)]


async def test_all_candidates_cooling_is_no_available_channel() -> None:
    rt = runtime()
    a, b = channel("a", keys=2), channel("b")
    cool = Decision(True, "key", "cooldown", 60.0)
    for name, index in [("a", 0), ("a", 1), ("b", 0)]:
        rt.health.failure(name, index, cool)
    upstream = FakeUpstream()
    attempts: list[Attempt] = []
    with pytest.raises(NoAvailableChannel) as info:
        await with_failover(rt, [a, b], attempts, upstream)
    assert info.value.status == 503
    assert info.value.code == "no_available_channel"
    assert upstream.calls == []
    assert attempts == []


async def test_disabled_and_cooling_mixed_leaves_the_one_healthy_key() -> None:
    rt = runtime()
    a, b = channel("a", keys=2, priority=1), channel("b", keys=2)
    rt.health.failure("a", 0, Decision(True, "key", "disable"))
    rt.health.failure("a", 1, Decision(True, "key", "cooldown", 60.0))
    rt.health.failure("b", 0, Decision(True, "key", "disable"))
    upstream = FakeUpstream()
    _, target, _ = await run(rt, [a, b], upstream)
    assert upstream.calls == [("b", 1)]


async def test_exhausted_after_key_failures_raises_the_last_upstream_error() -> None:
    rt = runtime(RetrySettings(max_attempts=5))
    a = channel("a", keys=2)
    upstream = FakeUpstream({("a", 0): err(429, status=429), ("a", 1): err(429, status=429)})
    with pytest.raises(UpstreamError) as info:
        await run(rt, [a], upstream)
    assert sorted(upstream.calls) == [("a", 0), ("a", 1)]
    assert info.value.upstream_status == 429


async def test_success_clears_the_failure_count() -> None:
    rt = runtime(RetrySettings(failures_to_cooldown=2))
    a, b = channel("a", priority=1), channel("b")
    await run(rt, [a, b], FakeUpstream({("a", 0): err(500)}))
    await run(rt, [a, b], FakeUpstream())  # a succeeds: its count starts over
    await run(rt, [a, b], FakeUpstream({("a", 0): err(500)}))
    assert rt.health.available("a", 0)
    await run(rt, [a, b], FakeUpstream({("a", 0): err(500)}))
    assert not rt.health.available("a", 0)


async def test_every_attempt_is_recorded_with_its_duration() -> None:
    rt = runtime(RetrySettings(max_attempts=4))
    a, b, c = channel("a", keys=2, priority=3), channel("b", priority=2), channel("c", priority=1)
    upstream = FakeUpstream({("a", 0): err(429), ("a", 1): err(502), ("b", 0): err(529)}, delay=0.02)
    _, target, attempts = await run(rt, [a, b, c], upstream)
    assert statuses(attempts) == [("a", 0, 429), ("a", 1, 502), ("b", 0, 529), ("c", 0, 200)]
    assert all(isinstance(x.duration_ms, int) and 15 <= x.duration_ms < 2000 for x in attempts)
    assert attempts[0].as_dict() == {
        "channel": "a",
        "key_index": 0,
        "status": 429,
        "duration_ms": attempts[0].duration_ms,
    }


async def test_non_upstream_errors_propagate_without_retry() -> None:
    rt = runtime()
    calls: list[str] = []

    async def call(target: Target) -> str:
        calls.append(target.channel.name)
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await run(rt, [channel("a", priority=1), channel("b")], call)
    assert calls == ["a"]


# next_target on its own


def test_next_target_skips_failed_channels_and_keys() -> None:
    health = Health(RetrySettings(), clock=Clock())
    a, b = channel("a", keys=2), channel("b", keys=2)
    target = next_target(health, [a, b], {"a"}, {("b", 0), ("b", 1)})
    assert target is None
    target = next_target(health, [a, b], {"a"}, {("b", 1)})
    assert target is not None and (target.channel.name, target.key_index) == ("b", 0)


def test_next_target_round_robins_keys_across_requests() -> None:
    health = Health(RetrySettings(), clock=Clock())
    a = channel("a", keys=3)
    picked = []
    for _ in range(6):
        target = next_target(health, [a], set(), set())
        assert target is not None
        picked.append(target.key_index)
    assert picked == [0, 1, 2, 0, 1, 2]


def test_next_target_keyless_channel_uses_index_zero() -> None:
    health = Health(RetrySettings(), clock=Clock())
    mock = ChannelSettings(name="mock", kind="mock", models=["m"])
    target = next_target(health, [mock], set(), set())
    assert target is not None and target.key_index == 0 and target.api_key is None


def test_next_target_respects_the_given_order() -> None:
    health = Health(RetrySettings(), clock=Clock())
    a, b = channel("a"), channel("b")
    target = next_target(health, [b, a], set(), set())
    assert target is not None and target.channel.name == "b"


class Buffer:
    """Stands in for the buffer of a failed read; weakly referenceable, so a test sees when it is freed."""


class LeakyUpstream:
    """Each call holds a Buffer in its frame when it fails, as a read that failed half-way does."""

    def __init__(self) -> None:
        self.buffers: list[weakref.ref[Buffer]] = []
        self.alive_at_call: list[list[bool]] = []

    async def __call__(self, target: Target) -> str:
        self.alive_at_call.append([ref() is not None for ref in self.buffers])
        buffer = Buffer()
        self.buffers.append(weakref.ref(buffer))
        try:
            raise ValueError("read failed")  # the cause, with its own traceback into this frame
        except ValueError:
            raise UpstreamError("cut", upstream_status=500) from None


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Cycles are collected rarely in production (gc.freeze, threshold 50_000): here, never."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_a_failed_attempt_keeps_nothing_of_its_call_alive(no_gc: None) -> None:
    rt = runtime()
    upstream = LeakyUpstream()
    with pytest.raises(UpstreamError):
        await run(rt, [channel("a", priority=2), channel("b", priority=1), channel("c")], upstream)
    # While trying b and c, the buffers of the calls that had failed were already gone.
    assert upstream.alive_at_call == [[], [False], [False, False]]


async def test_the_final_error_keeps_no_frame_alive_once_handled(no_gc: None) -> None:
    rt = runtime()
    upstream = LeakyUpstream()
    try:
        await run(rt, [channel("a", priority=1), channel("b")], upstream)
    except UpstreamError as exc:
        assert exc.code == "upstream_error"
    assert [ref() is None for ref in upstream.buffers] == [True, True]


async def test_an_error_that_stops_the_loop_keeps_no_frame_alive_once_handled(no_gc: None) -> None:
    rt = runtime()
    upstream = LeakyUpstream()
    a = channel("a")

    async def once(target: Target) -> str:
        try:
            return await upstream(target)
        except UpstreamError:
            raise UpstreamError("bad request", status=400, upstream_status=400) from None

    try:
        await run(rt, [a], once)
    except UpstreamError as exc:
        assert exc.status == 400
    assert [ref() is None for ref in upstream.buffers] == [True]
