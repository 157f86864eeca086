"""One keep-alive connection of the lean client (`http1.py`): an asyncio protocol on httptools' parser that
sends a request and reads its answer, whole (`exchange`) or, for an event stream, as it comes (`Flow`)."""

from __future__ import annotations

import asyncio

import httptools

from gateway.providers.http1_wire import (
    Answer,
    AnswerTimeout,
    Disconnected,
    Malformed,
    TooLarge,
    decoded,
    header,
    inflater,
    is_event_stream,
)

HEAD_LIMIT = 64 * 1024
STREAM_BUFFER = 256 * 1024  # an event stream's bytes read and not yet taken: past this, reading pauses
NOT_A_STREAM_BYTES = 1024 * 1024  # what is kept of an answer that came instead of an event stream


class Connection(asyncio.Protocol):
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
        self.streaming: Flow | None = None  # set once a 200 event stream's head came

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
            header(self._headers, "content-length")
            or "chunked" in header(self._headers, "transfer-encoding").lower()
        )
        return not framed

    def data_received(self, data: bytes) -> None:
        if not self._want:
            self.drop()  # bytes nobody asked for: this connection cannot be trusted with another request
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
            self.drop()  # a second answer to one request: this connection cannot be trusted any more

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
        if self._stream_wanted and status == 200 and is_event_stream(self._headers):
            try:
                flow = Flow(self, header(self._headers, "content-encoding"), self._limit_of_stream)
            except Malformed as exc:
                self._fail(exc)
                return
            self.streaming = flow
            self._answer.set_result(Answer(status, self._headers, b""))  # the body follows, through `flow`
            return
        announced = header(self._headers, "content-length")
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
                self.drop()
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
            body = decoded(self._headers, body, self._limit)
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
                self.drop()

    def _expire(self) -> None:
        self._fail(AnswerTimeout("the upstream did not answer in time"))

    def _fail(self, exc: Exception) -> None:
        self._want = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)
        elif self.streaming is not None:
            self.streaming.fail(exc)
        self._body, self._headers = [], []  # what was read of a refused answer is let go of at once
        self.drop()

    def drop(self) -> None:
        self._want = self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()


class Flow:
    """An event stream's body as it comes: bytes read wait in `chunks` until `read` takes them. Past
    `STREAM_BUFFER` bytes waiting, the connection stops reading until they are taken. A content encoding
    (gzip, deflate) is undone as the bytes come, with at most the caller's `max_bytes` waiting."""

    def __init__(self, conn: Connection, encoding: str, max_bytes: int) -> None:
        self._conn = conn
        self._inflate = inflater(encoding)
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
