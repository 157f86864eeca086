"""A lean HTTP/1.1 client for the upstream calls that carry the most traffic: a JSON POST of chat
completions, answered with a whole body (`post`) or with server-sent events (`open`).

aiohttp's client costs about 70 µs of CPU per call on the benchmark's machine, most of it general machinery
(request and response objects, timers, the payload registry); this one about 20 µs: a pool of keep-alive
connections per origin, httptools' parser (the one uvicorn uses), one write per request. Multipart bodies
and image answers keep aiohttp.

Every read is bounded: the answer's head (`HEAD_LIMIT`), its body (the caller's `max_bytes`), the whole call
(`timeout`; connecting within `connect_timeout`). An event stream's body is not bounded in all, but what is
read and not yet taken is: reading pauses past `STREAM_BUFFER` bytes, and each wait for more is bounded
(`read_timeout`). A connection goes back to the pool only after an answer read to its end that allows it,
and is not used after `IDLE_SECONDS` unused. A request that a reused
connection loses before any byte of an answer came (the upstream closed it as idle while the request was on
its way) is sent once more on a new connection, as browsers and Go's client do; any other failure is the
caller's to handle (failover).
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

import httptools

HEAD_LIMIT = 64 * 1024
IDLE_SECONDS = 30.0  # below the keep-alive timeout of most servers (nginx 75 s, Node 5 s is the exception)
# As many as the calls in flight to one upstream can be (hundreds of slow image calls): a smaller pool would
# close and reopen connections on every wave of answers. Unused ones are closed after IDLE_SECONDS.
MAX_IDLE_PER_ORIGIN = 4096
STREAM_BUFFER = 256 * 1024  # an event stream's bytes read and not yet taken: past this, reading pauses
NOT_A_STREAM_BYTES = 1024 * 1024  # what is kept of an answer that came instead of an event stream


class ConnectFailed(ConnectionError):
    """No connection to the upstream (refused, unreachable, name not found, TLS handshake failed)."""


class ConnectTimeout(TimeoutError):
    """Connecting took longer than allowed: the request was never sent."""


class AnswerTimeout(TimeoutError):
    """The request was sent; the whole answer did not come in time."""


class Disconnected(ConnectionError):
    """The connection ended before the answer did."""


class Malformed(ValueError):
    """Not an HTTP/1.x answer, a head over `HEAD_LIMIT`, or a content encoding that cannot be read."""


class TooLarge(ValueError):
    """The body is larger than the caller's `max_bytes`."""


class Answer(NamedTuple):
    status: int
    headers: list[tuple[str, str]]  # as received, names lower-cased
    body: bytes


Origin = tuple[str, str, int]  # scheme, host, port


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self._answer: asyncio.Future[Answer] | None = None
        self._want = False  # a request is out and its answer is not complete
        self._parser = httptools.HttpResponseParser(self)
        self._received = 0
        self._head_done = False
        self._head_bytes = 0
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._limit = 0
        self._limit_of_stream = 0
        # The request asked for an event stream (`open`): an answer that is none is kept up to `_limit`,
        # not refused past it.
        self._stream_wanted = False
        self.streaming: _Flow | None = None  # set once a 200 event stream's head came

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._want:
            return
        if exc is None and self._head_done and self._ends_at_close():
            self.on_message_complete()  # a body with no length ends where the connection does (RFC 9112 6.3)
        else:
            self._fail(Disconnected(str(exc) if exc else "the upstream closed the connection"))

    def _ends_at_close(self) -> bool:
        framed = (
            _header(self._headers, "content-length")
            or "chunked" in _header(self._headers, "transfer-encoding").lower()
        )
        return not framed

    def data_received(self, data: bytes) -> None:
        if not self._want:
            self._drop()  # bytes nobody asked for: this connection cannot be trusted with another request
            return
        self._received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(Malformed(f"not an HTTP/1.x answer ({type(exc).__name__})"))
            return
        if not self._head_done and self._received > HEAD_LIMIT:  # a read is at most 256 KiB: bounded
            self._fail(Malformed(f"the answer's head is larger than {HEAD_LIMIT} bytes"))

    # -- httptools callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if not self._want:
            self._drop()  # a second answer to one request: this connection cannot be trusted any more

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._want:
            return
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > HEAD_LIMIT:  # a head that came whole in one read
            self._fail(Malformed(f"the answer's head is larger than {HEAD_LIMIT} bytes"))
            return
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if not self._want or self._answer is None:
            return
        self._head_done = True
        status = self._parser.get_status_code()
        if self._stream_wanted and status == 200 and _is_event_stream(self._headers):
            try:
                flow = _Flow(self, _header(self._headers, "content-encoding"), self._limit_of_stream)
            except Malformed as exc:
                self._fail(exc)
                return
            self.streaming = flow
            self._answer.set_result(Answer(status, self._headers, b""))  # the body follows, through `flow`
            return
        announced = _header(self._headers, "content-length")
        if not self._stream_wanted and announced.strip().isdigit() and int(announced) > self._limit:
            self._fail(TooLarge(f"the answer is larger than {self._limit} bytes"))  # before any byte of it

    def on_body(self, body: bytes) -> None:
        if not self._want:
            return
        if self.streaming is not None:
            self.streaming.feed(body)
            return
        self._size += len(body)
        if self._size > self._limit:
            if self._stream_wanted and self._answer is not None:
                kept = b"".join(self._body) + body
                self._answer.set_result(
                    Answer(self._parser.get_status_code(), self._headers, kept[: self._limit])
                )
                self._want, self.reusable = False, False
                self._drop()
                return
            self._fail(TooLarge(f"the answer is larger than {self._limit} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._want:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self._head_done, self._headers, self._body, self._size = False, [], [], 0
            return
        self._want = False
        self.reusable = self._parser.should_keep_alive() and not self.closed
        if self.streaming is not None:
            self.streaming.end()
            return
        assert self._answer is not None  # set while a whole answer is awaited
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        try:
            body = _decoded(self._headers, body, self._limit)
        except (Malformed, TooLarge) as exc:
            self._fail(exc)
            return
        self._answer.set_result(Answer(status, self._headers, body))

    # -- use ----------------------------------------------------------------------------------------

    @property
    def answered_nothing(self) -> bool:
        return self._received == 0

    async def exchange(
        self, head: bytes, body: bytes, max_bytes: int, stream: bool, deadline: float
    ) -> Answer:
        """The answer by `deadline` (the loop's time), else AnswerTimeout; with `stream`, a 200 event
        stream's head only (its body through `streaming`), and any other answer whole, kept up to
        `NOT_A_STREAM_BYTES`."""
        assert self.transport is not None
        self.reusable, self._stream_wanted = False, stream
        self._limit = min(max_bytes, NOT_A_STREAM_BYTES) if stream else max_bytes
        self._limit_of_stream = max_bytes
        self._received = self._head_bytes = self._size = 0
        self._head_done, self._headers, self._body, self.streaming = False, [], [], None
        if self.closed:
            raise Disconnected("the upstream closed the connection")
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Answer] = loop.create_future()
        self._answer, self._want = answer, True
        self.transport.writelines((head, body))
        timer = loop.call_at(deadline, self._expire)
        try:
            return await answer
        finally:
            timer.cancel()
            # No reference from here to the answer's future: a failed one holds its exception, whose frames
            # hold this connection (a cycle that would wait for the collector, with what was read).
            self._answer = None
            if not answer.done() or answer.cancelled() or answer.exception() is not None:
                self._want = False
                self._drop()

    def _expire(self) -> None:
        self._fail(AnswerTimeout("the upstream did not answer in time"))

    def _fail(self, exc: Exception) -> None:
        self._want = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)
        elif self.streaming is not None:
            self.streaming.fail(exc)
        self._body, self._headers = [], []  # what was read of a refused answer is let go of at once
        self._drop()

    def _drop(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()


class _Flow:
    """An event stream's body as it comes: bytes read wait in `chunks` until `read` takes them. Past
    `STREAM_BUFFER` bytes waiting, the connection stops reading until they are taken. A content encoding
    (gzip, deflate) is undone as the bytes come, with at most the caller's `max_bytes` waiting."""

    def __init__(self, conn: _Connection, encoding: str, max_bytes: int) -> None:
        self._conn = conn
        self._inflate = _inflater(encoding)
        self._max = max_bytes
        self.chunks: list[bytes] = []
        self.waiting = 0
        self.ended = False
        self.failure: tuple[type[Exception], str] | None = None  # no exception object: no frames kept
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    def feed(self, data: bytes) -> None:
        if self._inflate is not None:
            data = self._inflate.decompress(data, self._max - self.waiting + 1)
            if self._inflate.unconsumed_tail or self.waiting + len(data) > self._max:
                self._conn._fail(TooLarge(f"the stream has more than {self._max} bytes waiting"))
                return
        if data:
            self.chunks.append(data)
            self.waiting += len(data)
        if self.waiting > STREAM_BUFFER and not self._paused and self._conn.transport is not None:
            self._paused = True
            self._conn.transport.pause_reading()
        self._wake()

    def end(self) -> None:
        if self._inflate is not None:
            rest = self._inflate.flush()
            if rest:
                self.chunks.append(rest)
        self.ended = True
        self._wake()

    def fail(self, exc: Exception) -> None:
        self.failure = (type(exc), str(exc))
        self.chunks, self.waiting = [], 0
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self, timeout: float) -> bytes:
        """What came since the last read, waiting at most `timeout` for some; b"" at the body's end."""
        while not self.chunks:
            if self.failure is not None:
                kind, message = self.failure
                raise kind(message)
            if self.ended:
                return b""
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks, self.waiting = [], 0
        if self._paused:
            self._paused = False
            if self._conn.transport is not None and not self._conn.closed:
                self._conn.transport.resume_reading()
        return data


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(AnswerTimeout("the upstream sent nothing more in time"))


class Stream:
    """An event stream being read: `read()` until it returns b"", then `close()`, which puts the connection
    back in the pool when the body ended cleanly and drops it otherwise (closing early is allowed)."""

    def __init__(
        self, client: Http1Client, origin: Origin, conn: _Connection, answer: Answer, read_timeout: float
    ) -> None:
        assert conn.streaming is not None
        self.status, self.headers = answer.status, answer.headers
        self._client, self._origin, self._conn = client, origin, conn
        self._flow = conn.streaming
        self._timeout = read_timeout
        self._closed = False

    async def read(self) -> bytes:
        try:
            return await self._flow.read(self._timeout)
        except TimeoutError:
            self.close()
            raise

    def at_eof(self) -> bool:
        return self._flow.ended and not self._flow.chunks

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._conn.streaming = None
        if self.at_eof() and self._flow.failure is None:
            self._client._release(self._origin, self._conn)
        else:
            self._conn._want = False
            self._conn._drop()


def _header(headers: list[tuple[str, str]], name: str) -> str:
    return next((value for key, value in headers if key == name), "")


def content_type(headers: list[tuple[str, str]]) -> str:
    """The media type, without parameters, lower-cased (as aiohttp's `content_type`)."""
    return _header(headers, "content-type").partition(";")[0].strip().lower() or "application/octet-stream"


def _is_event_stream(headers: list[tuple[str, str]]) -> bool:
    return content_type(headers) == "text/event-stream"


def _inflater(encoding: str) -> zlib._Decompress | None:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(47)
    if encoding == "deflate":
        return zlib.decompressobj(15)  # zlib-wrapped, as RFC 9110 says (raw deflate is read in `_decoded`)
    raise Malformed(f"the answer's content encoding {encoding[:40]!r} is not supported")


def _decoded(headers: list[tuple[str, str]], body: bytes, limit: int) -> bytes:
    """The body without its content encoding. The request asks for none (`Accept-Encoding: identity`); gzip
    and deflate are read anyway, bounded by `limit`, as some upstreams compress regardless."""
    encoding = _header(headers, "content-encoding").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise Malformed(f"the answer's content encoding {encoding[:40]!r} is not supported")
    wbits = 47 if encoding != "deflate" else 15  # 47: a gzip or zlib header; deflate: zlib, else raw
    for bits in (wbits, -15) if encoding == "deflate" else (wbits,):
        inflate = zlib.decompressobj(bits)
        try:
            out = inflate.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit or inflate.unconsumed_tail:
            raise TooLarge(f"the answer is larger than {limit} bytes")
        return out
    raise Malformed(f"the answer's {encoding} body does not decompress")


class Http1Client:
    def __init__(self) -> None:
        self._idle: dict[Origin, deque[_Connection]] = {}  # the most recently used at the right
        self._targets: dict[str, tuple[Origin, bytes, bytes] | None] = {}
        self._ssl: ssl.SSLContext | None = None

    def accepts(self, url: str) -> bool:
        """Whether this client can send to `url`: http or https, no credentials in it, an ASCII path."""
        return self._target(url) is not None

    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes, *, timeout: float, connect_timeout: float,
        max_bytes: int,
    ) -> Answer:  # fmt: skip
        origin, conn, answer = await self._call(
            url, headers, body, timeout, connect_timeout, max_bytes, False
        )
        self._release(origin, conn)
        return answer

    async def open(
        self, url: str, headers: Mapping[str, str], body: bytes, *, timeout: float, connect_timeout: float,
        max_bytes: int,
    ) -> Stream | Answer:  # fmt: skip
        """A request for an event stream: a `Stream` when the answer is a 200 `text/event-stream` (its head
        within `timeout`, then each wait for more bytes within `timeout`); any other answer whole, its body
        cut at `NOT_A_STREAM_BYTES` (enough for any error object). Events are at most `max_bytes`, and so
        is what may wait once decompressed."""
        origin, conn, answer = await self._call(url, headers, body, timeout, connect_timeout, max_bytes, True)
        if conn.streaming is not None:
            return Stream(self, origin, conn, answer, timeout)
        self._release(origin, conn)
        return answer

    async def _call(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float, connect_timeout: float,
        max_bytes: int, stream: bool,
    ) -> tuple[Origin, _Connection, Answer]:  # fmt: skip
        target = self._target(url)
        if target is None:
            raise ValueError(f"not a URL this client sends to: {url[:200]!r}")
        origin, request_line, host = target
        head = _head(request_line, host, headers, len(body))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout  # one timer for the answer (asyncio.timeout costs more a call)
        conn = self._reuse(origin)
        if conn is None:
            conn = await self._connect(origin, min(connect_timeout, timeout))
        try:
            answer = await conn.exchange(head, body, max_bytes, stream, deadline)
        except Disconnected:
            if not (conn.idle_since and conn.answered_nothing):
                raise
            # The upstream had closed it as idle: once more, on a new connection.
            conn = await self._connect(origin, min(connect_timeout, max(deadline - loop.time(), 0.0)))
            answer = await conn.exchange(head, body, max_bytes, stream, deadline)
        return origin, conn, answer

    async def close(self) -> None:
        for pool in self._idle.values():
            for conn in pool:
                conn._drop()
        self._idle.clear()

    # -- internals ----------------------------------------------------------------------------------

    def _target(self, url: str) -> tuple[Origin, bytes, bytes] | None:
        if url in self._targets:
            return self._targets[url]
        target: tuple[Origin, bytes, bytes] | None = None
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            parts = None
        if (
            parts is not None
            and parts.scheme in ("http", "https")
            and parts.hostname
            and parts.username is None
            and parts.password is None
            and url.isascii()
            and not any(c in url for c in " \r\n\t")
        ):
            scheme, host = parts.scheme, parts.hostname
            default = 443 if scheme == "https" else 80
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            netloc = parts.netloc if port != default else parts.netloc[: -len(f":{port}")]
            target = (scheme, host, port or default), f"POST {path} HTTP/1.1\r\n".encode(), netloc.encode()
        if len(self._targets) < 1024:
            self._targets[url] = target
        return target

    def _reuse(self, origin: Origin) -> _Connection | None:
        pool = self._idle.get(origin)
        now = time.monotonic()
        while pool:
            conn = pool.pop()
            if not conn.closed and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn._drop()
        return None

    def _release(self, origin: Origin, conn: _Connection) -> None:
        pool = self._idle.get(origin)
        if pool is None:
            pool = self._idle[origin] = deque()
        now = time.monotonic()
        while pool and now - pool[0].idle_since >= IDLE_SECONDS:  # the oldest go as others come back
            pool.popleft()._drop()
        if conn.reusable and not conn.closed and len(pool) < MAX_IDLE_PER_ORIGIN:
            conn.idle_since = now
            pool.append(conn)
        else:
            conn._drop()

    async def _connect(self, origin: Origin, timeout: float) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    _Connection, host, port, ssl=context, server_hostname=host if context else None
                )
        except TimeoutError:
            raise ConnectTimeout("connecting to the upstream timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"could not connect ({type(exc).__name__})") from None
        return conn


_OWN_HEADERS = frozenset({"host", "content-length", "accept-encoding", "transfer-encoding", "connection"})


def _head(request_line: bytes, host: bytes, headers: Mapping[str, str], length: int) -> bytes:
    lines = [
        request_line,
        b"Host: ",
        host,
        b"\r\nAccept-Encoding: identity\r\nContent-Length: ",
        b"%d" % length,
    ]
    agent = False
    for name, value in headers.items():
        lower = name.lower()
        if lower in _OWN_HEADERS:
            continue
        if "\n" in name or "\r" in name or "\n" in value or "\r" in value:
            raise ValueError(f"the header {name[:40]!r} holds a line break")
        agent = agent or lower == "user-agent"
        lines += (b"\r\n", name.encode("latin-1"), b": ", value.encode("latin-1"))
    lines.append(b"\r\n\r\n" if agent else b"\r\nUser-Agent: image-gateway\r\n\r\n")
    return b"".join(lines)
