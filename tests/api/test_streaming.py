"""The SSE answer: one write per relayed chunk, keepalive comments while idle, disconnects cancel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from gateway.api import streaming
from gateway.api.streaming import KEEPALIVE, DisconnectWatch, SSEResponse
from gateway.errors import UpstreamError


async def events(*items: bytes | float) -> AsyncGenerator[bytes, None]:
    for item in items:
        if isinstance(item, float):
            await asyncio.sleep(item)
        else:
            yield item


def never_disconnects() -> Any:
    async def receive() -> dict[str, str]:
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    return receive


async def run(response: SSEResponse, receive: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await response({"type": "http"}, receive, send)
    return sent


async def test_chunks_relayed_then_closed() -> None:
    sent = await run(SSEResponse(events(b"data: 1\n\n", b"data: 2\n\n"), 10.0), never_disconnects())
    assert sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    assert [m["body"] for m in sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n", b""]
    assert sent[-1]["more_body"] is False


async def test_keepalive_while_idle_and_not_while_busy() -> None:
    # The stream stays idle until the timer has sent three keepalives: counted, not timed.
    sent: list[dict[str, Any]] = []
    three_sent = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if [m.get("body") for m in sent].count(KEEPALIVE) == 3:
            three_sent.set()

    async def idle_between() -> AsyncGenerator[bytes, None]:
        yield b"data: 1\n\n"
        await three_sent.wait()
        yield b"data: 2\n\n"

    await SSEResponse(idle_between(), 0.01)({"type": "http"}, never_disconnects(), send)
    bodies = [m["body"] for m in sent[1:]]
    assert bodies[:4] == [b"data: 1\n\n", KEEPALIVE, KEEPALIVE, KEEPALIVE]
    assert bodies[-2:] == [b"data: 2\n\n", b""] and set(bodies[4:-2]) <= {KEEPALIVE}
    busy = await run(SSEResponse(events(b"data: 1\n\n", b"data: 2\n\n"), 0.05), never_disconnects())
    assert KEEPALIVE not in [m["body"] for m in busy[1:]]


async def test_keepalive_off_with_zero_interval() -> None:
    sent = await run(SSEResponse(events(b"data: 1\n\n", 0.1), 0), never_disconnects())
    assert KEEPALIVE not in [m["body"] for m in sent[1:]]


async def test_disconnect_cancels_the_relay_and_closes_the_generator() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncGenerator[bytes, None]:
        try:
            while True:
                yield b"data: x\n\n"
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    async def receive() -> dict[str, str]:
        await asyncio.sleep(0.05)
        return {"type": "http.disconnect"}

    await asyncio.wait_for(run(SSEResponse(endless(), 10.0), receive), timeout=2)
    assert closed.is_set()


async def test_disconnect_watch_only_swallows_its_own_cancellation() -> None:
    async def receive() -> dict[str, str]:
        await asyncio.sleep(0.02)
        return {"type": "http.disconnect"}

    with DisconnectWatch(receive) as watch:
        await asyncio.sleep(1)
    assert watch.disconnected

    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().call_later(0.02, task.cancel)
    try:
        with DisconnectWatch(never_disconnects(), delay=0.5) as watch:
            await asyncio.sleep(1)
    except asyncio.CancelledError:
        task.uncancel()
    else:
        raise AssertionError("a cancellation not caused by the client must propagate")
    assert not watch.disconnected


async def failing(after: list[bytes], error: Exception) -> AsyncGenerator[bytes, None]:
    for item in after:
        yield item
    raise error


async def test_an_error_before_any_event_is_a_plain_http_error() -> None:
    error = UpstreamError("all failed", status=429, code="rate_limit_exceeded", upstream_status=429)
    response = SSEResponse(failing([], error), 10.0)
    response.raw_headers.append((b"x-request-id", b"rid-1"))
    sent = await run(response, never_disconnects())
    assert sent[0]["status"] == 429
    assert (b"x-request-id", b"rid-1") in sent[0]["headers"]
    assert orjson.loads(sent[1]["body"])["error"]["code"] == "rate_limit_exceeded"


async def test_an_error_after_events_is_an_sse_error_event() -> None:
    error = UpstreamError("cut", status=502, code="upstream_stream_error")
    sent = await run(
        SSEResponse(failing([b"data: 1\n\n"], error), 10.0, b"event: error\ndata: "), never_disconnects()
    )
    assert sent[0]["status"] == 200
    bodies = [m["body"] for m in sent[1:]]
    assert bodies[0] == b"data: 1\n\n"
    assert bodies[1].startswith(b"event: error\ndata: {") and b"upstream_stream_error" in bodies[1]
    assert bodies[-1] == b""


async def test_keepalive_commits_the_answer_while_waiting() -> None:
    error = UpstreamError("late", status=502, code="upstream_http_500")

    async def slow_failure() -> AsyncGenerator[bytes, None]:
        await asyncio.sleep(0.15)
        raise error
        yield b""  # a generator

    sent = await run(SSEResponse(slow_failure(), 0.05), never_disconnects())
    assert sent[0]["status"] == 200 and sent[1]["body"] == KEEPALIVE
    assert b"upstream_http_500" in sent[-2]["body"]


async def test_by_default_an_error_is_an_sse_event_named_error() -> None:
    """§2: the stream ends with an SSE `error` event (the chat answer uses the default)."""
    error = UpstreamError("cut", status=502, code="upstream_stream_interrupted")
    sent = await run(SSEResponse(failing([b"data: 1\n\n"], error), 10.0), never_disconnects())
    last = sent[-2]["body"]
    assert last.startswith(b"event: error\ndata: {") and last.endswith(b"\n\n")
    assert orjson.loads(last.split(b"data: ", 1)[1])["error"]["code"] == "upstream_stream_interrupted"


async def test_a_crash_after_events_still_ends_the_stream_with_an_error_event() -> None:
    sent = await run(SSEResponse(failing([b"data: 1\n\n"], KeyError("x")), 10.0), never_disconnects())
    last = sent[-2]["body"]
    body = orjson.loads(last.split(b"data: ", 1)[1])
    assert body["error"]["code"] == "internal_error" and "KeyError" not in body["error"]["message"]
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_a_crash_before_any_event_is_a_500_in_the_error_shape() -> None:
    sent = await run(SSEResponse(failing([], KeyError("x")), 10.0), never_disconnects())
    assert sent[0]["status"] == 500
    assert orjson.loads(sent[1]["body"])["error"]["code"] == "internal_error"


async def test_delayed_watches_share_one_timer_and_start_only_when_due() -> None:
    """A watch over before its delay never reads from the client; a longer one does, and is cancelled."""

    async def must_not_read() -> dict[str, str]:
        raise AssertionError("a watch that ended before its delay must not start its watcher")

    async def gone() -> dict[str, str]:
        return {"type": "http.disconnect"}

    loop = asyncio.get_running_loop()
    with contextlib.ExitStack() as stack:
        for _ in range(50):
            stack.enter_context(DisconnectWatch(must_not_read, delay=0.05))
        pending = streaming._pending[loop][0.05]
        assert len(pending.since) == 50 and pending.timer is not None  # one timer for them all
    assert not pending.since
    with DisconnectWatch(gone, delay=0.05) as watch:
        await asyncio.Event().wait()  # only the watch's cancellation ends this
    assert watch.disconnected
