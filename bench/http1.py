"""A minimal HTTP/1.1 server for the fake upstream: keep-alive, Content-Length or chunked request bodies,
JSON or chunked SSE replies. Raw asyncio Protocol, no framework, so it costs next to nothing per request.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_QUEUED_PER_CONNECTION = 256
SMALL_BODY_BYTES = 64 * 1024  # bodies up to this size leave in one write with their head
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}
LAST_CHUNK = b"0\r\n\r\n"  # ends a chunked body


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    keep_alive: bool


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes = b""
    events: tuple[bytes, ...] | None = None  # SSE events, sent with chunked transfer encoding
    delay: float = 0.0  # seconds to wait before sending
    event_interval: float = 0.0  # seconds between SSE events; 0 sends a whole stream in one write

    @property
    def takes_time(self) -> bool:
        return self.delay > 0 or (self.events is not None and self.event_interval > 0)


Handler = Callable[[Request], Reply]


class BadRequest(Exception):
    """The bytes on the wire are not an HTTP/1.1 request we can answer."""


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest("bad request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest("bad header line")
        headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1], parts[2], headers


def take_chunked(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at `start`; None while incomplete, else (body, end offset)."""
    body = bytearray()
    pos = start
    for _ in range(100_000):
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        except ValueError as exc:
            raise BadRequest("bad chunk size") from exc
        if size == 0:  # last chunk, then optional trailers, then an empty line
            trailer_end = buf.find(b"\r\n\r\n", eol)
            return None if trailer_end < 0 else (bytes(body), trailer_end + 4)
        if len(buf) < eol + 2 + size + 2:
            return None
        body += buf[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest("body too large")
    raise BadRequest("too many chunks")


def next_request(buf: bytearray) -> Request | None:
    """Cut one complete request off the front of `buf`, or return None while it is incomplete."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buf) > MAX_HEAD_BYTES:
            raise BadRequest("head too large")
        return None
    method, target, version, headers = parse_head(bytes(buf[:head_end]))
    body_start = head_end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        taken = take_chunked(buf, body_start)
        if taken is None:
            return None
        body, end = taken
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError as exc:
            raise BadRequest("bad content-length") from exc
        if length < 0 or length > MAX_BODY_BYTES:
            raise BadRequest("bad content-length")
        if len(buf) < body_start + length:
            return None
        end = body_start + length
        body = bytes(buf[body_start:end])
    del buf[:end]
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return Request(method, target.split("?", 1)[0], headers, body, keep_alive)


def encode_head(reply: Reply, keep_alive: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Error')}",
        f"Content-Type: {reply.content_type}",
        "Server: bench-fake-upstream",
    ]
    if reply.events is None:
        lines.append(f"Content-Length: {len(reply.body)}")
    else:
        lines += ["Transfer-Encoding: chunked", "Cache-Control: no-cache"]
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def sse_frame(event: bytes) -> bytes:
    payload = b"data: " + event + b"\n\n"
    return b"%x\r\n%b\r\n" % (len(payload), payload)


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: requests are answered strictly in order; delayed ones run as a task."""

    def __init__(self, handler: Handler, tasks: set[asyncio.Task[None]]) -> None:
        self.handler = handler
        self.tasks = tasks  # strong references to in-flight tasks, cancelled at shutdown
        self.buf = bytearray()
        self.queue: deque[Request] = deque()
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports only quack like one

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.queue.clear()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            for _ in range(MAX_QUEUED_PER_CONNECTION):
                req = next_request(self.buf)
                if req is None:
                    break
                self.queue.append(req)
        except BadRequest as exc:
            self.queue.clear()
            if not self.busy:  # otherwise a reply is in flight; just drop the connection
                body = b'{"error":{"message":"%s","type":"invalid_request_error"}}' % str(exc).encode()
                self._send(Reply(400, "application/json", body), keep_alive=False)
            if self.transport is not None:
                self.transport.close()
            return
        if not self.busy:
            self._drain()

    def _drain(self) -> None:
        while self.queue and self.transport is not None:
            req = self.queue.popleft()
            reply = self.handler(req)
            if reply.takes_time:  # later replies on this connection wait their turn
                self.busy = True
                task = asyncio.ensure_future(self._answer_later(reply, req.keep_alive))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                return
            self._send(reply, req.keep_alive)

    async def _answer_later(self, reply: Reply, keep_alive: bool) -> None:
        try:
            await asyncio.sleep(reply.delay)
            if reply.events is None or reply.event_interval <= 0:
                self._send(reply, keep_alive)
                return
            self._write(encode_head(reply, keep_alive))
            for event in reply.events:
                await asyncio.sleep(reply.event_interval)
                self._write(sse_frame(event))
            self._write(LAST_CHUNK)
            self._finish(keep_alive)
        finally:
            self.busy = False
        self._drain()

    def _send(self, reply: Reply, keep_alive: bool) -> None:
        if reply.events is None and len(reply.body) > SMALL_BODY_BYTES:
            self._write(encode_head(reply, keep_alive))  # a large body is written as is, never copied
            self._write(reply.body)
        elif reply.events is None:
            self._write(encode_head(reply, keep_alive) + reply.body)
        else:
            # One write for the whole stream: each event is still its own HTTP chunk, and the shared load
            # core is spared a syscall per event. Reply.event_interval spaces events in time instead.
            frames = b"".join(sse_frame(event) for event in reply.events)
            self._write(encode_head(reply, keep_alive) + frames + LAST_CHUNK)
        self._finish(keep_alive)

    def _finish(self, keep_alive: bool) -> None:
        if self.transport is not None and not keep_alive:
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)


async def start_server(
    handler: Handler, host: str, port: int
) -> tuple[asyncio.Server, set[asyncio.Task[None]]]:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    server = await loop.create_server(
        lambda: HttpProtocol(handler, tasks), host, port, backlog=4096, reuse_address=True
    )
    return server, tasks
