"""Client disconnects cancel the work done for them; SSE answers with one write per upstream read.

`DisconnectWatch` cancels the current task when the client goes away (and swallows that one
cancellation). `SSEResponse` is a lean SSE answer: Starlette's StreamingResponse runs two extra
tasks per response, which the benchmark showed costing more than the relay itself.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncGenerator
from types import TracebackType

import orjson
from starlette.types import Receive, Scope, Send

from gateway.api.errors import error_response
from gateway.errors import GatewayError
from gateway.providers.sse import DONE

log = logging.getLogger("gateway.api")

KEEPALIVE = b": keepalive\n\n"
# An SSE `error` event: the OpenAI SDKs raise on it, and clients reading only `data:` lines see the
# §2 error object in place of a chunk.
ERROR_EVENT = b"event: error\ndata: "
WATCH_AFTER_SECONDS = 0.5  # most calls end before: a timer is cheaper than a watcher task
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Pending:
    """The watches of one event loop whose watcher is not started yet, with when they began: one timer
    (every half delay, while any is pending) starts the watchers that are due, instead of a timer each,
    which cost more per request than the rest of the watch. A watcher starts `delay` to 1.5 `delay` in."""

    def __init__(self, delay: float) -> None:  # no reference to the loop: it keys a weak dictionary
        self.delay = delay
        self.since: dict[DisconnectWatch, float] = {}
        self.timer: asyncio.TimerHandle | None = None

    def add(self, loop: asyncio.AbstractEventLoop, watch: DisconnectWatch) -> None:
        self.since[watch] = loop.time()
        if self.timer is None:
            self.timer = loop.call_later(self.delay / 2, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.timer = None
        due = loop.time() - self.delay
        for watch in [w for w, since in self.since.items() if since <= due]:
            del self.since[watch]
            watch._watch()
        if self.since:
            self.timer = loop.call_later(self.delay / 2, self._tick, loop)


_pending: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, _Pending]] = (
    weakref.WeakKeyDictionary()
)


def _pending_of(loop: asyncio.AbstractEventLoop, delay: float) -> _Pending:
    by_delay = _pending.get(loop)
    if by_delay is None:
        by_delay = _pending[loop] = {}
    pending = by_delay.get(delay)
    if pending is None:
        pending = by_delay[delay] = _Pending(delay)
    return pending


class DisconnectWatch:
    """`with DisconnectWatch(receive, delay):` — the body is cancelled if the client disconnects.

    The watcher (a task) starts only after `delay` seconds (see `_Pending`): most calls end before.
    After the block, `disconnected` tells whether the client went away.
    """

    def __init__(self, receive: Receive, delay: float = 0.0) -> None:
        self._receive = receive
        self._delay = delay
        self._task = asyncio.current_task()
        self._watcher: asyncio.Future[None] | None = None
        self._pending: _Pending | None = None
        self._active = False
        self.disconnected = False

    def _watch(self) -> None:
        self._watcher = asyncio.ensure_future(_disconnected(self._receive))
        self._watcher.add_done_callback(self._on_disconnect)

    def _on_disconnect(self, watcher: asyncio.Future[None]) -> None:
        if self._active and not watcher.cancelled() and self._task is not None:
            self.disconnected = True
            self._task.cancel()

    def __enter__(self) -> DisconnectWatch:
        self._active = True
        if self._delay > 0:
            loop = asyncio.get_running_loop()
            self._pending = _pending_of(loop, self._delay)
            self._pending.add(loop, self)
        else:
            self._watch()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self._active = False
        if self._pending is not None:
            self._pending.since.pop(self, None)
        if self._watcher is not None:
            self._watcher.cancel()
        if self.disconnected and exc_type is asyncio.CancelledError and self._task is not None:
            self._task.uncancel()
            return True
        return False


class SSEResponse:
    """A `text/event-stream` answer relaying `events` (already framed as SSE bytes).

    The status line goes out with the first event, or with the first keepalive comment once nothing
    happened for `keepalive_seconds`. So a GatewayError the events raise early (every upstream failed
    fast) is still a plain §2 error answer with its HTTP status; later, it is sent as an SSE error event
    (`error_prefix` + the error JSON). Keepalives come from a timer: the relay pays nothing per event.
    """

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        keepalive_seconds: float,
        error_prefix: bytes = ERROR_EVENT,
    ) -> None:
        self.events = events
        self.interval = keepalive_seconds
        self.error_prefix = error_prefix
        self.raw_headers = list(SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        out = _Output(send, self.raw_headers, self.interval)
        last = b""  # the chunk that ends with `[DONE]`: sent with the body's end, in one write
        try:
            with DisconnectWatch(receive, delay=WATCH_AFTER_SECONDS):
                async for chunk in self.events:
                    if last:
                        await out.write(last)
                        last = b""
                    if chunk.endswith(DONE):
                        last = chunk
                    else:
                        await out.write(chunk)
        except Exception as exc:
            if not isinstance(exc, GatewayError):  # a bug: the stream still ends with an error event
                log.exception("unhandled error in a stream on %s", scope.get("path"))
                exc = GatewayError("The server had an error while processing your request.")
            if out.started or last:
                await out.write(last + self.error_prefix + orjson.dumps(exc.body()) + b"\n\n")
            else:
                out.stop()
                response = error_response(exc)
                response.raw_headers += [h for h in self.raw_headers if h[0] == b"x-request-id"]
                await response(scope, receive, send)
                return
        finally:
            out.stop()
            await self.events.aclose()
        await out.write(b"")
        await send({"type": "http.response.body", "body": last, "more_body": False})


class _Output:
    """Writes SSE bytes, sending the status line first; a timer sends keepalives while idle."""

    def __init__(self, send: Send, headers: list[tuple[bytes, bytes]], interval: float) -> None:
        self._send = send
        self._headers = headers
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Future[None]] = set()
        self.started = False
        if interval > 0:
            self._timer = self._loop.call_later(interval, self._tick)

    async def write(self, chunk: bytes) -> None:
        self._last = self._loop.time()
        if not self.started:
            self.started = True
            await self._send({"type": "http.response.start", "status": 200, "headers": self._headers})
        if chunk:
            await self._send({"type": "http.response.body", "body": chunk, "more_body": True})

    def _tick(self) -> None:
        now = self._loop.time()
        if now - self._last >= self._interval:
            write = asyncio.ensure_future(self.write(KEEPALIVE))
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)
        self._timer = self._loop.call_at(self._last + self._interval, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
