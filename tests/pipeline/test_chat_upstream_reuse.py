"""A streamed chat read to its `[DONE]` leaves the upstream connection in the pool for the next request.

The upstream here is raw asyncio: it counts connections and sends the end of each chunked body only when
the test says so, after the relay has given the client `[DONE]`. So a relay that stops reading at `[DONE]`
(and closes a connection whose body has not ended) shows as a second connection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.domain import Target
from gateway.pipeline.chat import DONE, _relay
from gateway.providers.http1 import Http1Client
from gateway.providers.openai import http
from gateway.providers.openai.http import open_stream
from gateway.settings import ChannelSettings
from tests.pipeline.test_chat import CHUNKS, make_ledger, request


class HeldEndUpstream:
    """Keep-alive HTTP/1.1; each stream's events and `[DONE]` go out at once, its last chunk on `end`."""

    def __init__(self, held: bool = True) -> None:
        self.held = held  # False: the body's end goes out with `[DONE]`, in the same write
        self.connections = 0
        self.end = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                events = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in CHUNKS)
                body = events + b"data: [DONE]\n\n"
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    + b"transfer-encoding: chunked\r\n\r\n"
                    + b"%x\r\n" % len(body)
                    + body
                    + b"\r\n"
                    + (b"" if self.held else b"0\r\n\r\n")
                )
                await writer.drain()
                if not self.held:
                    continue
                await self.end.wait()
                self.end.clear()
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


async def _relay_once(
    session: aiohttp.ClientSession,
    target: Target,
    upstream: HeldEndUpstream,
    end_after_done: bool,
    lean: Http1Client | None,
) -> list[bytes]:
    ledger, submitted = make_ledger()

    async def open_upstream() -> tuple[http.OpenAIStream, Target]:
        body = {"model": "m", "messages": [], "stream": True}
        path = "/chat/completions"
        return await open_stream(session, target, path, body, max_bytes=1 << 20, lean=lean), target

    out = []
    async for chunk in _relay(ledger.rt, ledger, request(False), open_upstream):
        out.append(chunk)
        if chunk.endswith(DONE) and end_after_done:
            upstream.end.set()  # the body's end leaves the upstream only once the client has `[DONE]`
    upstream.end.set()
    assert submitted[0].status == "success"
    return out


@pytest.fixture(params=["aiohttp", "lean"])
async def lean(request: pytest.FixtureRequest) -> AsyncIterator[Http1Client | None]:
    """Which client reads the stream: aiohttp's, or the gateway's own (providers/http1.py)."""
    client = Http1Client() if request.param == "lean" else None
    yield client
    if client is not None:
        await client.close()


@pytest.mark.parametrize("end_after_done", [True, False])
async def test_a_stream_read_to_done_leaves_its_connection_for_the_next_request(
    monkeypatch: pytest.MonkeyPatch, end_after_done: bool, lean: Http1Client | None
) -> None:
    """An upstream that does not end its body after `[DONE]` (within the wait, cut to nothing here) has
    its connection closed: the answer is whole all the same."""
    if not end_after_done:
        monkeypatch.setattr(http, "_END_WAIT_SECONDS", 0.0)
    upstream = HeldEndUpstream()
    base_url = await upstream.start()
    channel = ChannelSettings(name="up", kind="openai", base_url=base_url, api_keys=["sk-up"], models=["m"])
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                out = await _relay_once(session, Target(channel, 0), upstream, end_after_done, lean)
                assert out[-1].endswith(DONE) and b"".join(out).count(DONE) == 1
    finally:
        await upstream.stop()
    assert upstream.connections == (1 if end_after_done else 2)


async def test_a_stream_whose_end_comes_with_done_keeps_its_connection_without_waiting(
    monkeypatch: pytest.MonkeyPatch, lean: Http1Client | None
) -> None:
    """The usual upstream: the body's end is in the read that holds `[DONE]`. Nothing is waited for (the
    wait is cut to nothing here) and the connection goes back to the pool."""
    monkeypatch.setattr(http, "_END_WAIT_SECONDS", 0.0)
    upstream = HeldEndUpstream(held=False)
    base_url = await upstream.start()
    channel = ChannelSettings(name="up", kind="openai", base_url=base_url, api_keys=["sk-up"], models=["m"])
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                out = await _relay_once(session, Target(channel, 0), upstream, False, lean)
                assert out[-1].endswith(DONE) and b"".join(out).count(DONE) == 1
    finally:
        await upstream.stop()
    assert upstream.connections == 1
