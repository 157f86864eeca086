"""A fake OpenAI-compatible upstream for the billing tests: what an answer delivers decides what is billed.

The first path segment picks a behaviour:
- `ok`: Images API answers `n` images with gpt-image usage (10 text tokens in, 1056 image tokens out
  per image); chat answers with usage 1000 prompt / 500 completion tokens.
- `half`: like `ok` but delivers half of the `n` images asked for (at least one).
- `nousage`: like `ok` without a `usage` object.
- `refuse`: HTTP 400 with OpenAI's safety refusal (`content_policy_violation`): no image.
- `fail`: HTTP 500.
- `gate`: like `ok`, but each call waits until `release()`; `wait_arrivals(n)` waits for n waiting calls.
Every call is counted by behaviour.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.providers.mock import render_png

PNG_B64 = base64.b64encode(render_png("billing", 2)).decode()
REFUSAL = {
    "error": {
        "message": "Your request was rejected as a result of our safety system.",
        "type": "image_generation_user_error",
        "param": None,
        "code": "content_policy_violation",
    }
}


@dataclass
class FakeBillingUpstream:
    calls: Counter[str] = field(default_factory=Counter)
    gate: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def release(self) -> None:
        self.gate.set()

    def wait_arrivals(self, n: int, timeout: float = 30) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: self.calls["gate"] >= n, timeout)

    def count(self, behaviour: str | None = None) -> int:
        with self.arrived:
            return sum(self.calls.values()) if behaviour is None else self.calls[behaviour]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{behaviour}/v1/images/generations", self.images)
        app.router.add_post("/{behaviour}/v1/chat/completions", self.chat)
        return app

    def _failure(self, behaviour: str) -> web.Response | None:
        with self.arrived:
            self.calls[behaviour] += 1
            self.arrived.notify_all()
        if behaviour == "refuse":
            return web.json_response(REFUSAL, status=400)
        if behaviour == "fail":
            return web.json_response({"error": {"message": "boom", "type": "server_error"}}, status=500)
        return None

    async def images(self, request: web.Request) -> web.Response:
        behaviour = request.match_info["behaviour"]
        body: dict[str, Any] = await request.json()
        failure = self._failure(behaviour)
        if failure is not None:
            return failure
        while behaviour == "gate" and not self.gate.is_set():
            await asyncio.sleep(0.01)
        n = body.get("n") or 1
        delivered = max(n // 2, 1) if behaviour == "half" else n
        answer: dict[str, Any] = {
            "created": int(time.time()),
            "data": [{"b64_json": PNG_B64} for _ in range(delivered)],
        }
        if behaviour != "nousage":
            answer["usage"] = {
                "input_tokens": 10,
                "output_tokens": 1056 * delivered,
                "total_tokens": 10 + 1056 * delivered,
                "input_tokens_details": {"text_tokens": 10, "image_tokens": 0},
            }
        return web.json_response(answer)

    async def chat(self, request: web.Request) -> web.Response:
        behaviour = request.match_info["behaviour"]
        body: dict[str, Any] = await request.json()
        failure = self._failure(behaviour)
        if failure is not None:
            return failure
        answer: dict[str, Any] = {
            "id": "chatcmpl-billing",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
            ],
        }
        if behaviour != "nousage":
            answer["usage"] = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
        return web.json_response(answer)
