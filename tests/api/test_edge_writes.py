"""The hot routes' answers leave in as few writes as uvicorn allows: the head goes out with the first body
bytes, not on its own. Driven through uvicorn's own HTTP protocol with a transport that records writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.api.drain import Drain
from gateway.api.serving import ServingEdge
from gateway.api.streaming import SSEResponse


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def plain(request: Request) -> Response:
    return Response(b'{"ok": true}', media_type="application/json")


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/json")


async def events() -> AsyncGenerator[bytes, None]:
    yield b"data: a\n\n"
    await asyncio.sleep(0)
    yield b"data: b\n\ndata: [DONE]\n\n"


async def stream(request: Request) -> SSEResponse:
    return SSEResponse(events(), keepalive_seconds=0)


def connected() -> tuple[HttpToolsProtocol, RecordingTransport]:
    edge = ServingEdge(FastAPI(), {"/plain": plain, "/stream": stream, "/echo": echo}, Drain(1.0))
    config = Config(edge, lifespan="off", log_level="error")
    config.load()
    protocol = HttpToolsProtocol(config, ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


async def written(transport: RecordingTransport, end: bytes) -> None:
    for _ in range(1000):
        if transport.writes and transport.writes[-1].endswith(end):
            return
        await asyncio.sleep(0)


async def answer(path: str) -> list[bytes]:
    protocol, transport = connected()
    protocol.data_received(b"POST %s HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n" % path.encode())
    await written(transport, b"0\r\n\r\n" if path == "/stream" else b"}")
    protocol.connection_lost(None)
    return transport.writes


async def test_a_whole_answer_is_one_write() -> None:
    writes = await answer("/plain")
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and b"x-request-id: " in writes[0]
    assert writes[0].endswith(b'\r\n\r\n{"ok": true}')


async def test_a_stream_sends_its_head_with_its_first_events() -> None:
    writes = await answer("/stream")
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(b"\r\n\r\n9\r\ndata: a\n\n\r\n")  # the head and the first chunk together
    assert writes[1:] == [b"17\r\ndata: b\n\ndata: [DONE]\n\n\r\n0\r\n\r\n"]  # the last with the end


async def test_a_100_continue_is_not_held_back() -> None:
    """The client waits for `100 Continue` before it sends the body: it goes out at once, on its own."""
    protocol, transport = connected()
    head = b"POST /echo HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    protocol.data_received(head)
    await written(transport, b"HTTP/1.1 100 Continue\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    protocol.data_received(b"{}")
    await written(transport, b"{}")
    protocol.connection_lost(None)
    assert len(transport.writes) == 2 and transport.writes[1].startswith(b"HTTP/1.1 200 OK\r\n")
