import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.pipeline.heartbeat import with_heartbeat


async def slow_source(events: list[str]) -> AsyncIterator[int]:
    yield 1
    await asyncio.sleep(0.2)
    yield 2
    events.append("finished")


async def test_idle_intervals_yield_none() -> None:
    events: list[str] = []
    out = [item async for item in with_heartbeat(slow_source(events), 0.05)]
    assert out[0] == 1 and out[-1] == 2
    nones = out[1:-1]
    assert nones and all(x is None for x in nones)
    assert 1 <= len(nones) <= 5  # about 0.2 s / 0.05 s
    assert events == ["finished"]


async def test_items_pass_straight_through_when_fast() -> None:
    async def fast() -> AsyncIterator[str]:
        for x in "abc":
            yield x

    assert [x async for x in with_heartbeat(fast(), 0.05)] == ["a", "b", "c"]


async def test_zero_interval_means_no_heartbeat() -> None:
    events: list[str] = []
    assert [x async for x in with_heartbeat(slow_source(events), 0)] == [1, 2]


async def test_source_errors_propagate() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        await asyncio.sleep(0.08)
        raise ValueError("upstream broke")

    seen: list[int | None] = []
    with pytest.raises(ValueError, match="upstream broke"):
        async for x in with_heartbeat(failing(), 0.05):
            seen.append(x)
    assert seen[0] == 1 and None in seen


async def test_closing_cancels_the_pending_read() -> None:
    state: list[str] = []

    async def hanging() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.sleep(3600)
            yield 2
        except asyncio.CancelledError:
            state.append("cancelled")
            raise

    gen = with_heartbeat(hanging(), 0.05)
    assert await gen.__anext__() == 1
    assert await gen.__anext__() is None
    await gen.aclose()  # type: ignore[attr-defined]
    for _ in range(5):  # let the cancellation reach the source
        await asyncio.sleep(0)
    assert state == ["cancelled"]
