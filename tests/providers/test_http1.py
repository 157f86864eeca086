"""The lean HTTP/1.1 client (providers/http1.py) against scripted upstreams: keep-alive reuse, chunked and
encoded answers, every bound (head, announced and streamed body, time), a reused connection the upstream
closed as idle, TLS, and the request it writes."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import trustme

from gateway.domain import Target
from gateway.errors import UpstreamError
from gateway.providers import http1
from gateway.providers.http1 import Http1Client
from gateway.providers.openai.http import post as openai_post
from gateway.settings import ChannelSettings

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}'


class Upstream:
    """A raw TCP server: `handler(reader, writer, n)` answers the n-th connection (from 1)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.gate: asyncio.Queue[None] = asyncio.Queue()  # `streaming`: one write per item
        RUNNING.append(self)

    async def stop(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def start(self, context: ssl.SSLContext | None = None) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if context else 'http'}://127.0.0.1:{port}/v1/chat/completions"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            await self.handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


RUNNING: list[Upstream] = []


@pytest.fixture
async def client() -> AsyncIterator[Http1Client]:
    lean = Http1Client()
    yield lean
    await lean.close()
    while RUNNING:
        await RUNNING.pop().stop()
    for _ in range(3):  # a closed transport lets go of its socket on a later turn of the loop
        await asyncio.sleep(0)


async def post(client: Http1Client, url: str, max_bytes: int = 1 << 20, timeout: float = 5.0) -> http1.Answer:
    return await client.post(
        url, {"Authorization": "Bearer sk-up", "Content-Type": "application/json"}, b'{"model": "m"}',
        timeout=timeout, connect_timeout=timeout, max_bytes=max_bytes,
    )  # fmt: skip


def answering(*answers: bytes, then_close: bool = False) -> Callable[[Upstream], Handler]:
    """Each request of a connection gets the next answer; then the connection closes (or waits)."""

    def make(up: Upstream) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
            for answer in answers:
                await up.read_request(reader)
                writer.write(answer)
                await writer.drain()
            if not then_close:
                await reader.read()  # until the client closes

        return handler

    return make


async def upstream(make: Callable[[Upstream], Handler]) -> tuple[Upstream, str]:
    up = Upstream(lambda r, w, n: asyncio.sleep(0))
    up.handler = make(up)
    return up, await up.start()


async def test_keep_alive_connections_are_reused(client: Http1Client) -> None:
    up, url = await upstream(answering(OK, OK, OK))
    answers = [await post(client, url) for _ in range(3)]
    assert [(a.status, a.body) for a in answers] == [(200, b'{"ok": true}')] * 3
    assert up.connections == 1
    head = up.requests[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"POST /v1/chat/completions HTTP/1.1"
    host = b"Host: 127.0.0.1:" + url.split(":")[2].split("/")[0].encode()
    expected = {host, b"Content-Length: 14", b"Accept-Encoding: identity", b"Authorization: Bearer sk-up"}
    assert expected | {b"User-Agent: image-gateway"} <= set(head)
    assert up.requests[0].endswith(b'\r\n\r\n{"model": "m"}')


async def test_a_chunked_answer_and_its_headers(client: Http1Client) -> None:
    head = b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked = head + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    _, url = await upstream(answering(chunked))
    answer = await post(client, url)
    assert (answer.status, answer.body, ("retry-after", "7") in answer.headers) == (429, b"abcde", True)


async def test_an_interim_answer_is_skipped(client: Http1Client) -> None:
    _, url = await upstream(answering(b"HTTP/1.1 100 Continue\r\n\r\n" + OK))
    assert (await post(client, url)).body == b'{"ok": true}'


async def test_a_gzip_answer_is_decoded_and_other_encodings_refused(client: Http1Client) -> None:
    packed = gzip.compress(b'{"ok": true}')
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed)
    _, url = await upstream(answering(head + packed, head + packed))
    assert (await post(client, url)).body == b'{"ok": true}'
    with pytest.raises(http1.TooLarge):  # bounded after decoding too
        await post(client, url, max_bytes=5)
    brotli = b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\nxx"
    _, url = await upstream(answering(brotli))
    with pytest.raises(http1.Malformed):
        await post(client, url)


async def test_an_announced_length_over_the_limit_is_refused_at_once(client: Http1Client) -> None:
    up, url = await upstream(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n"))
    with pytest.raises(http1.TooLarge):  # the upstream sends nothing more and keeps the connection: no wait
        await post(client, url, max_bytes=1000, timeout=30)


async def test_a_body_over_the_limit_is_cut_and_its_connection_dropped(client: Http1Client) -> None:
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    up, url = await upstream(answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 4))
    with pytest.raises(http1.TooLarge):
        await post(client, url, max_bytes=2000)
    assert (await post_ok_after(client, up)) == 2  # the cut connection was not reused


async def post_ok_after(client: Http1Client, up: Upstream) -> int:
    up.handler = answering(OK)(up)
    assert up.server is not None
    port = up.server.sockets[0].getsockname()[1]
    assert (await post(client, f"http://127.0.0.1:{port}/v1/chat/completions")).status == 200
    return up.connections


@pytest.mark.parametrize(
    "answer", [b"HTTP/1.1 200 OK\r\nX-Filler: " + b"f" * 70_000 + b"\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n\r\n"]
)
async def test_a_head_too_large_or_not_http_is_malformed(client: Http1Client, answer: bytes) -> None:
    _, url = await upstream(answering(answer))
    with pytest.raises(http1.Malformed):
        await post(client, url)


async def test_nothing_listening_is_a_failed_connect(client: Http1Client) -> None:
    up, url = await upstream(answering(OK))
    assert up.server is not None
    up.server.close()
    await up.server.wait_closed()
    with pytest.raises(http1.ConnectFailed):
        await post(client, url)


async def test_an_upstream_that_never_answers_times_out_after_the_request(client: Http1Client) -> None:
    up, url = await upstream(answering())  # reads nothing, answers nothing
    with pytest.raises(http1.AnswerTimeout):
        await post(client, url, timeout=0.2)
    assert up.connections == 1


async def test_a_reused_connection_closed_as_idle_is_sent_once_more(client: Http1Client) -> None:
    """The first connection answers one request, then takes the next and closes without a byte of answer
    (as a server closing an idle connection does): the request goes again on a new connection."""

    def make(up: Upstream) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
            await up.read_request(reader)
            writer.write(OK)
            await writer.drain()
            if n == 1:
                await up.read_request(reader)  # and close without answering
            else:
                await reader.read()

        return handler

    up, url = await upstream(make)
    assert (await post(client, url)).status == 200
    assert (await post(client, url)).status == 200
    assert up.connections == 2 and len(up.requests) == 3


async def test_a_new_connection_that_closes_without_an_answer_is_an_error(client: Http1Client) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")

    up = Upstream(hang_up)
    url = await up.start()
    with pytest.raises(http1.Disconnected):
        await post(client, url)
    assert up.connections == 1  # not sent again: it was not a reused connection


async def test_https(client: Http1Client) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client._ssl = ssl.create_default_context()
    ca.configure_trust(client._ssl)
    up = Upstream(lambda r, w, n: asyncio.sleep(0))
    up.handler = answering(OK)(up)
    url = await up.start(server_context)
    assert (await post(client, url)).body == b'{"ok": true}'


def test_what_it_sends_to() -> None:
    lean = Http1Client()
    assert lean._target("https://api.example.com/v1/chat/completions") == (
        ("https", "api.example.com", 443),
        b"POST /v1/chat/completions HTTP/1.1\r\n",
        b"api.example.com",
    )
    assert lean._target("http://[::1]:8080/v1/x?a=1") == (
        ("http", "::1", 8080),
        b"POST /v1/x?a=1 HTTP/1.1\r\n",
        b"[::1]:8080",
    )
    assert lean._target("https://h.example:443/x")[2] == b"h.example"  # type: ignore[index]
    for url in ("ftp://h/x", "https://user:pw@h/x", "https://h/ü", "https://h/a b", "not a url"):
        assert not lean.accepts(url), url
    with pytest.raises(ValueError):
        http1._head(b"POST / HTTP/1.1\r\n", b"h", {"X-Evil": "a\r\nInjected: 1"}, 0)


async def test_a_second_answer_to_one_request_retires_the_connection(client: Http1Client) -> None:
    up, url = await upstream(answering(OK + OK, OK))
    assert (await post(client, url)).body == b'{"ok": true}'
    assert (await post(client, url)).status == 200
    assert up.connections == 2


async def test_an_error_answer_keeps_its_retry_after_through_post(client: Http1Client) -> None:
    """`openai.http.post` over this client: a 429's Retry-After reaches the error (the cooldown)."""
    busy = b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nContent-Length: 2\r\n\r\n{}"
    _, url = await upstream(answering(busy))
    base = url.removesuffix("/chat/completions")
    channel = ChannelSettings(name="c", kind="openai", base_url=base, api_keys=["k"], models=["m"])
    async with aiohttp.ClientSession() as unused:  # only the lean client is asked
        with pytest.raises(UpstreamError) as info:
            await openai_post(
                unused, Target(channel, 0), "/chat/completions", {}, max_bytes=1 << 20, lean=client
            )
    assert (info.value.status, info.value.retry_after) == (429, 7.0)


# -- event streams (`open`) ---------------------------------------------------------------------------------

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def open_stream(
    client: Http1Client, url: str, max_bytes: int = 1 << 20, timeout: float = 5.0
) -> http1.Stream | http1.Answer:
    return await client.open(
        url, {"Content-Type": "application/json"}, b'{"model": "m"}',
        timeout=timeout, connect_timeout=timeout, max_bytes=max_bytes,
    )  # fmt: skip


async def read_all(stream: http1.Stream) -> bytes:
    parts = []
    while part := await stream.read():
        parts.append(part)
    return b"".join(parts)


def streaming(*writes: bytes, until_close: bool = False) -> Callable[[Upstream], Handler]:
    """The first request of a connection gets `writes` one by one, each waiting for the client to ask
    (`gate`), then OK to a second request; with `until_close` the body ends where the connection does."""

    def make(up: Upstream) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
            await up.read_request(reader)
            for write in writes:
                await up.gate.get()
                writer.write(write)
                await writer.drain()
            if until_close:
                return
            await up.read_request(reader)
            writer.write(OK)
            await reader.read()

        return handler

    return make


async def streaming_upstream(make: Callable[[Upstream], Handler], writes: int) -> tuple[Upstream, str]:
    up, url = await upstream(make)
    for _ in range(writes):
        up.gate.put_nowait(None)
    return up, url


async def test_a_stream_comes_as_it_is_sent_and_its_connection_is_kept(client: Http1Client) -> None:
    events = [b'data: {"n": %d}\n\n' % n for n in range(3)]
    writes = [SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n", *(chunk(e) for e in events), b"0\r\n\r\n"]
    up, url = await streaming_upstream(streaming(*writes), 2)  # the head and the first event only
    stream = await open_stream(client, url)
    assert isinstance(stream, http1.Stream)
    assert (stream.status, http1.content_type(stream.headers)) == (200, "text/event-stream")
    assert await stream.read() == events[0]
    assert not stream.at_eof()
    for _ in writes[2:]:
        up.gate.put_nowait(None)
    assert await read_all(stream) == b"".join(events[1:])
    assert stream.at_eof()
    stream.close()
    assert (await post(client, url)).status == 200
    assert up.connections == 1  # the stream read to its end left its connection in the pool


async def test_a_stream_without_a_length_ends_where_its_connection_does(client: Http1Client) -> None:
    up, url = await streaming_upstream(streaming(SSE_HEAD + b"\r\n", b"data: a\n\n", until_close=True), 2)
    stream = await open_stream(client, url)
    assert isinstance(stream, http1.Stream)
    assert await read_all(stream) == b"data: a\n\n"  # an end, not an error
    stream.close()
    whole = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
    _, url = await upstream(answering(whole + b'{"ok": true}', then_close=True))
    assert (await post(client, url)).body == b'{"ok": true}'  # the same for a whole answer


async def test_a_stream_cut_before_its_end_is_disconnected(client: Http1Client) -> None:
    writes = [SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n", chunk(b"data: a\n\n")]
    up, url = await streaming_upstream(streaming(*writes, until_close=True), 2)
    stream = await open_stream(client, url)
    assert isinstance(stream, http1.Stream)
    assert await stream.read() == b"data: a\n\n"
    with pytest.raises(http1.Disconnected):
        await stream.read()
    stream.close()


async def test_a_stalled_stream_times_out_and_is_not_kept(client: Http1Client) -> None:
    writes = [SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n", chunk(b"data: a\n\n"), b"0\r\n\r\n"]
    up, url = await streaming_upstream(streaming(*writes), 2)  # never the end
    stream = await open_stream(client, url, timeout=0.2)
    assert isinstance(stream, http1.Stream)
    assert await stream.read() == b"data: a\n\n"
    with pytest.raises(http1.AnswerTimeout):
        await stream.read()
    stream.close()
    up.gate.put_nowait(None)
    assert (await post_ok_after(client, up)) == 2


async def test_a_stream_closed_early_drops_its_connection(client: Http1Client) -> None:
    writes = [SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n", chunk(b"data: a\n\n"), b"0\r\n\r\n"]
    up, url = await streaming_upstream(streaming(*writes), 2)  # the end is not sent
    stream = await open_stream(client, url)
    assert isinstance(stream, http1.Stream)
    assert await stream.read() == b"data: a\n\n"
    stream.close()  # before the end came: the rest of the body would be read as the next answer
    assert (await post_ok_after(client, up)) == 2


async def test_reading_pauses_while_the_reader_does_not_take(client: Http1Client) -> None:
    """An upstream that sends 8 MiB at once: at most STREAM_BUFFER and one read wait in memory."""
    piece = b"data: " + b"x" * 65_530 + b"\n\n"
    body = chunk(piece) * 128
    up, url = await streaming_upstream(streaming(SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n", body), 2)
    stream = await open_stream(client, url)
    assert isinstance(stream, http1.Stream)
    transport = stream._conn.transport
    assert transport is not None
    for _ in range(10_000):
        if not transport.is_reading():
            break
        await asyncio.sleep(0)
    assert not transport.is_reading()
    assert http1.STREAM_BUFFER < stream._flow.waiting <= http1.STREAM_BUFFER + 256 * 1024
    got = 0
    while got < len(piece) * 128:
        got += len(await stream.read())
        assert stream._flow.waiting <= http1.STREAM_BUFFER + 256 * 1024
    assert got == len(piece) * 128
    stream.close()


async def test_a_gzip_stream_is_decoded_as_it_comes(client: Http1Client) -> None:
    packed = gzip.compress(b"data: a\n\ndata: b\n\n")
    head = SSE_HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed)
    _, url = await streaming_upstream(streaming(head + packed[:10], packed[10:]), 2)
    stream = await open_stream(client, url)
    assert isinstance(stream, http1.Stream)
    assert await read_all(stream) == b"data: a\n\ndata: b\n\n"
    stream.close()
    bomb = gzip.compress(b"\n" * 4_000_000)
    head = SSE_HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
    _, url = await streaming_upstream(streaming(head + bomb), 1)
    stream = await open_stream(client, url, max_bytes=100_000)
    assert isinstance(stream, http1.Stream)
    with pytest.raises(http1.TooLarge):  # never more than max_bytes decoded and waiting
        await read_all(stream)
    stream.close()


async def test_an_answer_that_is_no_stream_comes_whole_and_cut(client: Http1Client) -> None:
    busy = b"HTTP/1.1 429 Too Many\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    up, url = await upstream(answering(busy, OK))
    answer = await open_stream(client, url)
    assert isinstance(answer, http1.Answer) and (answer.status, answer.body) == (429, b"{}")
    answer = await open_stream(client, url)  # a 200 that is no event stream
    assert isinstance(answer, http1.Answer) and answer.body == b'{"ok": true}'
    assert up.connections == 1
    huge = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5000000\r\n\r\n" + b"h" * 5_000_000
    up, url = await upstream(answering(huge))
    answer = await open_stream(client, url)  # not refused: its status and its first MiB are kept
    assert isinstance(answer, http1.Answer)
    assert (answer.status, len(answer.body)) == (200, http1.NOT_A_STREAM_BYTES)
    assert (await post_ok_after(client, up)) == 2


async def test_hundreds_of_calls_at_once_keep_their_connections(client: Http1Client) -> None:
    """300 calls in flight to one upstream, twice: the second wave reuses every connection of the first."""
    gate = asyncio.Event()

    def make(up: Upstream) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
            while True:
                await up.read_request(reader)
                if len(up.requests) >= 300:
                    gate.set()
                await gate.wait()  # every call of a wave is in flight before any is answered
                writer.write(OK)
                await writer.drain()

        return handler

    up, url = await upstream(make)
    for _ in range(2):
        gate.clear()
        up.requests.clear()
        answers = await asyncio.gather(*(post(client, url) for _ in range(300)))
        assert {a.status for a in answers} == {200}
    assert up.connections == 300


async def test_connections_unused_for_long_are_closed_as_others_come_back(
    client: Http1Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(http1, "time", type("Clock", (), {"monotonic": staticmethod(lambda: now[0])}))
    up, url = await upstream(answering(*[OK] * 10))
    await asyncio.gather(*(post(client, url) for _ in range(3)))
    pool = next(iter(client._idle.values()))
    assert len(pool) == 3 and up.connections == 3
    now[0] += 20
    await post(client, url)  # the most recent one, reused; the other two not yet too old
    assert len(pool) == 3
    now[0] += 20
    await post(client, url)  # 40 s for the other two: closed when this one comes back
    assert len(pool) == 1 and up.connections == 3
