"""A fake OpenAI-compatible chat (and Images API generations) upstream for the multi-process tests. The
first path segment picks a behaviour: `/hold/v1/...` keeps each request open until the test calls
`release()`; `/keyed/v1/...` answers 429 to the key `sk-busy-0` and 200 to any other; `/ok/v1/...` answers
at once. Every request's behaviour and key is recorded in arrival order."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web

from gateway.providers.mock import render_png
from tests.fakes.openai_upstream import fixture

REFUSED_KEY = "sk-busy-0"
HOLD_LIMIT_SECONDS = 20.0  # a forgotten release() must not hang the test run


@dataclass
class HeldUpstream:
    seen: list[tuple[str, str]] = field(default_factory=list)  # (behaviour, key)
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)
    holding: int = 0

    def reset(self) -> None:
        with self.lock:
            self.seen.clear()
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def keys(self, behaviour: str) -> list[str]:
        with self.lock:
            return [key for b, key in self.seen if b == behaviour]

    def held(self) -> int:
        with self.lock:
            return self.holding

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{behaviour}/v1/chat/completions", self.chat)
        app.router.add_post("/{behaviour}/v1/images/generations", self.images)
        return app

    async def images(self, request: web.Request) -> web.Response:
        behaviour = request.match_info["behaviour"]
        body = await request.json()
        with self.lock:
            self.seen.append((behaviour, request.headers.get("Authorization", "").removeprefix("Bearer ")))
        if behaviour == "hold":
            await self._hold()
        png = base64.b64encode(render_png(str(body.get("prompt", "")), 8)).decode()
        return web.json_response({"created": int(time.time()), "data": [{"b64_json": png}]})

    async def chat(self, request: web.Request) -> web.Response:
        behaviour = request.match_info["behaviour"]
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        body = await request.json()
        with self.lock:
            self.seen.append((behaviour, key))
        if behaviour == "keyed" and key == REFUSED_KEY:
            return web.json_response(fixture("error_429.json"), status=429, headers={"Retry-After": "120"})
        if behaviour == "hold":
            await self._hold()
        answer = fixture("chat_completion.json")
        answer["model"] = body["model"]
        return web.json_response(answer)

    async def _hold(self) -> None:
        with self.lock:
            self.holding += 1
        try:
            deadline = time.monotonic() + HOLD_LIMIT_SECONDS
            while not self.released.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        finally:
            with self.lock:
                self.holding -= 1
