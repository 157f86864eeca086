"""A lean HTTP/1.1 client for the upstream calls that carry the most traffic: a JSON POST of chat
completions, answered with a whole body (`post`) or with server-sent events (`open`).

aiohttp's client costs about 70 µs of CPU per call on the benchmark's machine, most of it general machinery
(request and response objects, timers, the payload registry); this one about 20 µs: a pool of keep-alive
connections per origin, httptools' parser (the one uvicorn uses), one write per request. Multipart bodies
and image answers keep aiohttp.

The connection and what it reads are in `http1_connection.py` and `http1_wire.py`. Every read is bounded: the
answer's head (`HEAD_LIMIT`), its body (the caller's `max_bytes`), the whole call (`timeout`; connecting
within `connect_timeout`). An event stream's body is not bounded in all, but what is read and not yet taken
is: reading pauses past `STREAM_BUFFER` bytes, and each wait for more is bounded (`read_timeout`). A
connection goes back to the pool only after an answer read to its end that allows it, and is not used after
`IDLE_SECONDS` unused. A request that a reused connection loses before any byte of an answer came (the
upstream closed it as idle while the request was on its way) is sent once more on a new connection, as
browsers and Go's client do; any other failure is the caller's to handle (failover).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Mapping
from urllib.parse import urlsplit

from gateway.providers.http1_connection import NOT_A_STREAM_BYTES, STREAM_BUFFER, Connection
from gateway.providers.http1_wire import (
    Answer,
    AnswerTimeout,
    ConnectFailed,
    ConnectTimeout,
    Disconnected,
    Malformed,
    TooLarge,
    content_type,
)

__all__ = [
    "NOT_A_STREAM_BYTES",
    "STREAM_BUFFER",
    "Answer",
    "AnswerTimeout",
    "ConnectFailed",
    "ConnectTimeout",
    "Disconnected",
    "Http1Client",
    "Malformed",
    "Stream",
    "TooLarge",
    "content_type",
]

IDLE_SECONDS = 30.0  # below the keep-alive timeout of most servers (nginx 75 s, Node 5 s is the exception)
# As many as the calls in flight to one upstream can be (hundreds of slow image calls): a smaller pool would
# close and reopen connections on every wave of answers. Unused ones are closed after IDLE_SECONDS.
MAX_IDLE_PER_ORIGIN = 4096

Origin = tuple[str, str, int]  # scheme, host, port


class Stream:
    """An event stream being read: `read()` until it returns b"", then `close()`, which puts the connection
    back in the pool when the body ended cleanly and drops it otherwise (closing early is allowed)."""

    def __init__(
        self, client: Http1Client, origin: Origin, conn: Connection, answer: Answer, read_timeout: float
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
            self._conn.drop()


class Http1Client:
    def __init__(self) -> None:
        self._idle: dict[Origin, deque[Connection]] = {}  # the most recently used at the right
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
    ) -> tuple[Origin, Connection, Answer]:  # fmt: skip
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
                conn.drop()
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

    def _reuse(self, origin: Origin) -> Connection | None:
        pool = self._idle.get(origin)
        now = time.monotonic()
        while pool:
            conn = pool.pop()
            if not conn.closed and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.drop()
        return None

    def _release(self, origin: Origin, conn: Connection) -> None:
        pool = self._idle.get(origin)
        if pool is None:
            pool = self._idle[origin] = deque()
        now = time.monotonic()
        while pool and now - pool[0].idle_since >= IDLE_SECONDS:  # the oldest go as others come back
            pool.popleft().drop()
        if conn.reusable and not conn.closed and len(pool) < MAX_IDLE_PER_ORIGIN:
            conn.idle_since = now
            pool.append(conn)
        else:
            conn.drop()

    async def _connect(self, origin: Origin, timeout: float) -> Connection:
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
                    Connection, host, port, ssl=context, server_hostname=host if context else None
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
