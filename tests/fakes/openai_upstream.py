"""A fake OpenAI-compatible upstream. The first path segment picks a behaviour, so one server can
stand in for several channels: `/ok/v1/...`, `/fail500/v1/...`, `/r429/v1/...`, `/r400/v1/...`.

Answers and error bodies follow the recorded examples in tests/fixtures/openai/.
Every request is recorded (behaviour, path, headers, JSON body) for assertions.

Ordering events are logged BEFORE the write they describe: once bytes are written, the gateway and
the test's client may run (in other processes and threads) before this handler logs anything, so
an event logged after a write can land after what it caused.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.providers.mock import render_png

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openai"
CHAT_IMAGE = render_png("chat image", 32)  # what the `imgchat` behaviour draws, as a data URL
CHAT_IMAGE_URL = "data:image/png;base64," + base64.b64encode(CHAT_IMAGE).decode()


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Recorded:
    behaviour: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeOpenAI:
    calls: list[Recorded] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # ordering log shared with the test
    release_stream: threading.Event = field(default_factory=threading.Event)
    stream_closed: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.events.clear()
        self.release_stream.clear()
        self.stream_closed.clear()

    def count(self, behaviour: str) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c.behaviour == behaviour)

    def last(self, behaviour: str) -> Recorded:
        with self.lock:
            return [c for c in self.calls if c.behaviour == behaviour][-1]

    def log(self, event: str) -> None:
        with self.lock:
            self.events.append(event)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{behaviour}/v1/chat/completions", self.chat)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        behaviour = request.match_info["behaviour"]
        body = await request.json()
        with self.lock:
            self.calls.append(Recorded(behaviour, request.path, dict(request.headers), body))
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return web.json_response(fixture("error_401.json"), status=401)
        if behaviour == "fail500":
            return web.json_response(fixture("error_500.json"), status=500)
        if behaviour == "r429":
            return web.json_response(fixture("error_429.json"), status=429, headers={"Retry-After": "120"})
        if behaviour == "r400":
            return web.json_response(fixture("error_400.json"), status=400)
        if behaviour == "slow":
            await asyncio.sleep(float(request.headers.get("x-delay", "0.6")))
        if body.get("stream"):
            return await self._stream(request, body, gated=behaviour == "gated", image=behaviour == "imgchat")
        answer = fixture("chat_completion.json")
        answer["model"] = body["model"]
        if behaviour == "imgchat":  # OpenRouter-style image answer: markdown plus `images[]`
            message = answer["choices"][0]["message"]
            message["content"] = f"Here it is.\n\n![image]({CHAT_IMAGE_URL})"
            message["images"] = [{"type": "image_url", "image_url": {"url": CHAT_IMAGE_URL}}]
        return web.json_response(answer)

    async def _stream(
        self, request: web.Request, body: dict[str, Any], *, gated: bool, image: bool = False
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        chunks = fixture("chat_stream_chunks.json")
        if image:
            chunks[2] = {
                **chunks[2],
                "choices": [{"index": 0, "delta": {"content": f"![image]({CHAT_IMAGE_URL})"}}],
            }
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        try:
            for i, chunk in enumerate(chunks):
                if chunk.get("usage") is not None and not include_usage:
                    continue
                chunk = {**chunk, "model": body["model"]}
                if i == 0:
                    self.log("upstream_sending_first")
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                if i == 0 and gated:
                    gate = await self._gate(request)
                    self.log(f"upstream_{gate}")
                    if gate != "released":  # the gateway hung up, or never let the first chunk through
                        self.stream_closed.set()
                        return response
            self.log("upstream_sending_last")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.log("upstream_saw_disconnect")
            self.stream_closed.set()
            raise
        return response

    async def _gate(self, request: web.Request) -> str:
        """Hold the rest of the stream until the test has the first chunk and sets `release_stream`.

        "released", or "saw_disconnect" if the gateway hung up meanwhile, or "gate_timed_out" if
        nothing came within 10 s (a gateway that holds the first chunk back until the end).
        """
        deadline = time.monotonic() + 10
        while not self.release_stream.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return "saw_disconnect"
            if time.monotonic() > deadline:
                return "gate_timed_out"
            await asyncio.sleep(0.01)
        return "released"


def wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
