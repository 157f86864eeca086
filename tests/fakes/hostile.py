"""A hostile OpenAI-compatible upstream: a raw asyncio HTTP server that writes exactly the bytes a test
scripts, framing included, so it can lie about `Content-Length`, close mid-body, drip, or never send a
newline. aiohttp's server would refuse to send most of these.

The first path segment picks the answer: `/ok/v1/...` answers a valid chat or Images API answer (stream
or not, as the request asks); any other segment answers the `Scripted` answer the test set for it with
`script(segment, answer)` (a function of the request's JSON body may be given instead). Every request is
counted per segment. The server runs on its own event loop in a thread, so it serves in-process
gateways (TestClient) and gateway processes alike.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.openai_images import make_png

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CHAT_ANSWER = json.loads((FIXTURES / "openai" / "chat_completion.json").read_text())
CHAT_CHUNKS = json.loads((FIXTURES / "openai" / "chat_stream_chunks.json").read_text())


@dataclass
class Scripted:
    """One answer. `parts` are written in order (with `drip` seconds between them), then `fill` (a block
    written `count` times, so that a huge body needs no huge buffer here); then the connection closes.

    `length`: the `Content-Length` to announce; "auto" announces the true length, None sends none
    (the body then ends when the connection closes). `chunked` frames each write as an HTTP chunk.
    """

    status: int = 200
    content_type: str | None = "application/json"
    parts: list[bytes] = field(default_factory=list)
    length: int | str | None = "auto"
    chunked: bool = False
    drip: float = 0.0
    fill: tuple[bytes, int] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body_length(self) -> int:
        filled = len(self.fill[0]) * self.fill[1] if self.fill else 0
        return sum(len(p) for p in self.parts) + filled


Answer = Scripted | Callable[[dict[str, Any]], Scripted]


def sse(*events: Any, done: bool = True) -> bytes:
    """`data:` events (dicts become JSON), then `data: [DONE]` unless `done` is False."""
    out = b"".join(
        b"data: " + (json.dumps(e).encode() if not isinstance(e, bytes) else e) + b"\n\n" for e in events
    )
    return out + (b"data: [DONE]\n\n" if done else b"")


def ok_answer(path: str, body: dict[str, Any]) -> Scripted:
    """What a well-behaved upstream answers."""
    if path.endswith("/chat/completions"):
        if body.get("stream"):
            chunks = [{**c, "model": body.get("model")} for c in CHAT_CHUNKS]
            return Scripted(content_type="text/event-stream", parts=[sse(*chunks)])
        return Scripted(parts=[json.dumps({**CHAT_ANSWER, "model": body.get("model")}).encode()])
    b64 = base64.b64encode(make_png(str(body.get("prompt")), (8, 8))).decode()
    if body.get("stream"):
        events = (
            b"event: image_generation.partial_image\ndata: "
            + json.dumps({"type": "image_generation.partial_image", "b64_json": b64}).encode()
            + b"\n\nevent: image_generation.completed\ndata: "
            + json.dumps({"type": "image_generation.completed", "b64_json": b64, "usage": {}}).encode()
            + b"\n\n"
        )
        return Scripted(content_type="text/event-stream", parts=[events])
    answer = {"created": 1, "data": [{"b64_json": b64}], "usage": {"input_tokens": 3, "output_tokens": 5}}
    return Scripted(parts=[json.dumps(answer).encode()])


class HostileUpstream:
    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def base_url(self, segment: str) -> str:
        return f"{self.url}/{segment}/v1"

    def script(self, segment: str, answer: Answer) -> None:
        with self.lock:
            self.answers[segment] = answer

    def clear(self, segment: str) -> None:
        """`segment` answers like `/ok/` again."""
        with self.lock:
            self.answers.pop(segment, None)

    def count(self, segment: str) -> int:
        with self.lock:
            return self.calls.get(segment, 0)

    def start(self) -> HostileUpstream:
        self._thread.start()

        async def boot() -> None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]

        asyncio.run_coroutine_threadsafe(boot(), self.loop).result(timeout=10)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()

    def __enter__(self) -> HostileUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path, body = await _read_request(reader)
            segment = path.strip("/").split("/", 1)[0]
            with self.lock:
                self.calls[segment] = self.calls.get(segment, 0) + 1
                answer = self.answers.get(segment)
            if answer is None:
                scripted = ok_answer(path, body)
            else:
                scripted = answer(body) if callable(answer) else answer
            await _write(writer, scripted)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, Any]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    raw = await reader.readexactly(length) if length else b""
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {}
    return path, body if isinstance(body, dict) else {}


async def _write(writer: asyncio.StreamWriter, answer: Scripted) -> None:
    head = [f"HTTP/1.1 {answer.status} X", "Connection: close"]
    if answer.content_type is not None:
        head.append(f"Content-Type: {answer.content_type}")
    if answer.chunked:
        head.append("Transfer-Encoding: chunked")
    elif answer.length == "auto":
        head.append(f"Content-Length: {answer.body_length()}")
    elif isinstance(answer.length, int):
        head.append(f"Content-Length: {answer.length}")
    head += [f"{k}: {v}" for k, v in answer.headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()

    async def send(data: bytes) -> None:
        if not data:
            return
        if answer.chunked:
            writer.write(b"%x\r\n" % len(data))
        with memoryview(data) as view:
            for start in range(0, len(data), 65536):  # small writes: the fake buffers little itself
                writer.write(view[start : start + 65536])
                await writer.drain()
        if answer.chunked:
            writer.write(b"\r\n")

    for n, part in enumerate(answer.parts):
        if n and answer.drip:
            await asyncio.sleep(answer.drip)
        await send(part)
    if answer.fill is not None:
        block, count = answer.fill
        for _ in range(count):
            await send(block)
    if answer.chunked:
        writer.write(b"0\r\n\r\n")
        await writer.drain()
