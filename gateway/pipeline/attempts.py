"""The only failover loop: try candidates in order, never reusing a key or channel that failed."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from gateway import metrics
from gateway.domain import Attempt, Target
from gateway.errors import NoAvailableChannel, UpstreamError
from gateway.routing.health import Health
from gateway.routing.policy import classify
from gateway.routing.selector import key_order, order_channels
from gateway.runtime import Runtime
from gateway.settings import ChannelSettings

T = TypeVar("T")


def next_target(
    health: Health,
    ordered: Sequence[ChannelSettings],
    failed_channels: set[str],
    failed_keys: set[tuple[str, int]],
) -> Target | None:
    for channel in ordered:
        if channel.name in failed_channels:
            continue
        n_keys = max(len(channel.api_keys), 1)
        for index in key_order(n_keys, health.next_start(channel.name) if n_keys > 1 else 0):
            if (channel.name, index) not in failed_keys and health.available(channel.name, index):
                return Target(channel, index)
    return None


async def with_failover(
    rt: Runtime,
    channels: Sequence[ChannelSettings],
    attempts: list[Attempt],
    call: Callable[[Target], Awaitable[T]],
) -> tuple[T, Target]:
    """Run `call` on successive targets until one succeeds or the retry table says stop.

    Every attempt is appended to `attempts`. Raises the last UpstreamError, or NoAvailableChannel
    when every candidate is cooling down or disabled.
    """
    retry = rt.settings.retry
    ordered = order_channels(channels, rt.rng)
    failed_channels: set[str] = set()
    failed_keys: set[tuple[str, int]] = set()
    last_error: UpstreamError | None = None
    for _ in range(retry.max_attempts):
        target = next_target(rt.health, ordered, failed_channels, failed_keys)
        if target is None:
            break
        if last_error is not None:
            metrics.failover(attempts[-1].channel)
        name, index = target.channel.name, target.key_index
        started = time.perf_counter()
        try:
            result = await call(target)
        except UpstreamError as err:
            seconds = time.perf_counter() - started
            elapsed = int(seconds * 1000)
            attempts.append(Attempt(name, index, err.upstream_status or err.code or "error", elapsed))
            metrics.attempt(name, metrics.outcome(err.upstream_status, err.code), seconds)
            decision = classify(err, retry)
            rt.health.failure(name, index, decision, elapsed)
            if decision.scope == "channel":
                failed_channels.add(name)
            else:
                failed_keys.add((name, index))
            if not decision.retry:
                raise
            last_error = _detached(err)
            continue
        seconds = time.perf_counter() - started
        elapsed = int(seconds * 1000)
        attempts.append(Attempt(name, index, 200, elapsed))
        metrics.attempt(name, "success", seconds)
        rt.health.success(name, index, elapsed)
        return result, target
    if last_error is None:
        raise NoAvailableChannel("No channel can serve this request right now; try again later.")
    try:
        raise last_error
    finally:
        last_error = None  # else this frame and the raised error would hold each other (a cycle)


def _detached(error: UpstreamError) -> UpstreamError:
    """The error without its traceback and chain, to be kept while the next candidate is tried.

    Their frames hold whatever the failed call held (a read buffer, the request body), and with
    `gc.freeze()` and a high GC threshold (app.py) cycles through them live long.
    """
    error.__traceback__ = None
    error.__context__ = None
    error.__cause__ = None
    return error
