"""A fake Gemini API (`generativelanguage.googleapis.com`), reproducing Google's wire format.

Sources for every shape are listed in tests/fixtures/gemini/README.md; in short:
- paths `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`, the key in
  the `x-goog-api-key` header (Gemini API reference, "generateContent" REST examples; the cookbook's
  "Streaming Quickstart with REST": "Set alt=sse … each stream chunk is a GenerateContentResponse");
- SSE frames `data: {…}` each followed by `\\r\\n\\r\\n`, and no `[DONE]` (google-genai's
  `_api_client.py` parses CR, LF and CRLF line ends for this reason; envoyproxy/ai-gateway#1536 and
  Routstr/routstr-core#543 fixed CRLF framing for Gemini's `alt=sse`);
- answers `candidates[].content.parts[]` with `text`, `inlineData {mimeType, data}`, `thought: true`
  and `thoughtSignature`, `finishReason`, `promptFeedback.blockReason`, `usageMetadata` with
  `promptTokensDetails` / `candidatesTokensDetails` by modality (recorded examples in the fixtures);
- errors `{"error": {"code", "message", "status", "details"}}`.
Every answer the fake writes is kept in `answered`, so a test can check each against google-genai's
own types; every request is recorded (model, method, query, headers, JSON body).

A test scripts the next answers with `will(Reply…)`; without a script the fake answers like the model
would: an image model (responseModalities with IMAGE) gets text and a PNG drawn from the prompt.
It runs inside the test's event loop (`start()`) or in a thread (`ThreadedServer(fake.app)`).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.providers.mock import render_png

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gemini"
KEY = "AIzaFakeGeminiKey0123456789"
FRAME_END = b"\r\n\r\n"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def usage(prompt: int = 10, text: int = 0, image: int = 0, thoughts: int = 0, prompt_image: int = 0) -> Any:
    details = [{"modality": "TEXT", "tokenCount": prompt - prompt_image}]
    if prompt_image:
        details.append({"modality": "IMAGE", "tokenCount": prompt_image})
    meta: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": text + image,
        "totalTokenCount": prompt + text + image + thoughts,
        "promptTokensDetails": details,
    }
    out = [{"modality": m, "tokenCount": n} for m, n in (("TEXT", text), ("IMAGE", image)) if n]
    if out:
        meta["candidatesTokensDetails"] = out
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


def image_answer(
    image: bytes,
    *,
    text: str | None = "Here is your image.",
    signature: str | None = None,
    thought: str | None = None,
    mime: str = "image/png",
    model: str = "gemini-2.5-flash-image",
) -> Any:
    """The shape of tests/fixtures/gemini/image_answer.json with the given parts."""
    answer = fixture("image_answer.json")
    parts: list[dict[str, Any]] = []
    if thought:
        parts.append({"text": thought, "thought": True})
    if text:
        parts.append({"text": text})
    image_part: dict[str, Any] = {"inlineData": {"mimeType": mime, "data": b64(image)}}
    if signature:
        image_part["thoughtSignature"] = signature
    parts.append(image_part)
    answer["candidates"][0]["content"]["parts"] = parts
    answer["usageMetadata"] = usage(17, 8 if text else 0, 1290, 200 if thought else 0)
    answer["modelVersion"] = model
    return answer


def text_answer(text: str, *, finish: str = "STOP") -> Any:
    answer = fixture("text_answer.json")
    answer["candidates"][0]["content"]["parts"] = [{"text": text}]
    answer["candidates"][0]["finishReason"] = finish
    return answer


def refused(reason: str, message: str | None = None) -> Any:
    """A candidate stopped for `reason` (IMAGE_SAFETY, NO_IMAGE, …), without content."""
    answer = fixture("finish_refused.json")
    answer["candidates"][0]["finishReason"] = reason
    if message is None:
        answer["candidates"][0].pop("finishMessage")
    else:
        answer["candidates"][0]["finishMessage"] = message
    return answer


def blocked(reason: str = "PROHIBITED_CONTENT") -> Any:
    answer = fixture("prompt_blocked.json")
    answer["promptFeedback"]["blockReason"] = reason
    return answer


def frames_of(answer: Any) -> list[Any]:
    """An answer as a stream: one frame per part; the last carries finishReason and the usage."""
    candidate = answer["candidates"][0]
    parts = candidate.get("content", {}).get("parts", []) or [None]
    frames = []
    for i, part in enumerate(parts):
        frame: dict[str, Any] = {"candidates": [{"index": 0}], "modelVersion": answer.get("modelVersion")}
        if part is not None:
            frame["candidates"][0]["content"] = {"role": "model", "parts": [part]}
        if i == len(parts) - 1:
            frame["candidates"][0]["finishReason"] = candidate["finishReason"]
            frame["usageMetadata"] = answer["usageMetadata"]
        frames.append(frame)
    return frames


@dataclass
class Reply:
    """One scripted answer. `frames` makes it a stream answer; `tail` is written raw after them."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    frames: list[Any] | None = None
    tail: bytes = b""
    gate: bool = False  # streams: hold after the first frame until `release` is set or the caller leaves
    hold: bool = False  # hold before answering at all (silent upstream) until `release` is set

    @classmethod
    def error(cls, name: str, headers: dict[str, str] | None = None) -> Reply:
        body = fixture(name)
        return cls(body=body, status=body["error"]["code"], headers=headers or {})


@dataclass
class Recorded:
    model: str
    method: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any

    @property
    def parts(self) -> list[Any]:
        """The parts of the last content (the prompt)."""
        parts: list[Any] = self.body["contents"][-1]["parts"]
        return parts

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.body.get("generationConfig", {})
        return config


@dataclass
class FakeGemini:
    keys: set[str] = field(default_factory=lambda: {KEY})
    calls: list[Recorded] = field(default_factory=list)
    answered: list[Any] = field(default_factory=list)  # every JSON document written: bodies and frames
    produced: list[bytes] = field(default_factory=list)  # images of the default answers, in order
    events: list[str] = field(default_factory=list)
    replies: deque[Reply] = field(default_factory=deque)
    hold_until_in_flight: int = 0  # hold each call until this many are in flight (or 5 s pass)
    in_flight: int = 0
    max_in_flight: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    stream_closed: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _runner: web.AppRunner | None = None
    url: str = ""

    def reset(self) -> None:
        """Forget every call, answer and script; release nothing held (tests of a shared fake)."""
        with self.lock:
            self.calls.clear()
            self.answered.clear()
            self.produced.clear()
            self.events.clear()
            self.replies.clear()
            self.hold_until_in_flight = self.in_flight = self.max_in_flight = 0
            self.release = threading.Event()
            self.stream_closed = threading.Event()

    def will(self, *replies: Reply | Any) -> None:
        """Answer the next calls with these (a dict is a 200 JSON answer)."""
        with self.lock:
            self.replies.extend(r if isinstance(r, Reply) else Reply(body=r) for r in replies)

    def log(self, event: str) -> None:
        with self.lock:
            self.events.append(event)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1beta/models/{model:[^/:]+}:{method}", self.handle)
        return app

    async def start(self) -> FakeGemini:
        self._runner = web.AppRunner(self.app(), shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the API ---------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        model, method = request.match_info["model"], request.match_info["method"]
        body = await request.json()
        record = Recorded(model, method, dict(request.query), dict(request.headers), body)
        with self.lock:
            self.calls.append(record)
            reply = self.replies.popleft() if self.replies else None
        if method not in ("generateContent", "streamGenerateContent"):
            return self._json(request, fixture("error_400_invalid_argument.json"), 404)
        if "key" in request.query:
            return self._json(request, {"error": {"code": 400, "message": "key in URL", "status": "X"}}, 400)
        key = request.headers.get("x-goog-api-key")
        if key is None:
            return self._json(request, fixture("error_403_permission_denied.json"), 403)
        if key not in self.keys:
            return self._json(request, fixture("error_400_api_key_invalid.json"), 400)
        stream = method == "streamGenerateContent"
        if stream and request.query.get("alt") != "sse":
            return self._json(request, fixture("error_400_invalid_argument.json"), 400)
        reply = reply or self._default(record, stream)
        self._enter()
        try:
            if not await self._wait_for_peers(request) or (reply.hold and not await self._gate(request)):
                return web.Response(status=499)
            if reply.frames is not None:
                return await self._stream(request, reply)
            return self._json(request, reply.body, reply.status, reply.headers)
        finally:
            self._leave()

    def _default(self, record: Recorded, stream: bool) -> Reply:
        modalities = record.config.get("responseModalities") or []
        if "IMAGE" not in modalities:
            answer = text_answer("A fake reply.")
        else:
            prompt = " ".join(p.get("text", "") for p in record.parts if isinstance(p, dict))
            with self.lock:
                image = render_png(f"{prompt}#{len(self.produced)}", 16)
                self.produced.append(image)
            answer = image_answer(image, text=None if modalities == ["IMAGE"] else "Here is your image.")
        return Reply(frames=frames_of(answer)) if stream else Reply(body=answer)

    def _json(
        self, request: web.Request, body: Any, status: int, headers: dict[str, str] | None = None
    ) -> web.Response:
        with self.lock:
            self.answered.append(copy.deepcopy(body))
        return web.json_response(body, status=status, headers=headers)

    async def _stream(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        assert reply.frames is not None
        try:
            for i, frame in enumerate(reply.frames):
                with self.lock:
                    self.answered.append(copy.deepcopy(frame))
                await response.write(b"data: " + json.dumps(frame).encode() + FRAME_END)
                if i == 0 and reply.gate and not await self._gate(request):
                    return response
            if reply.tail:
                await response.write(reply.tail)
            self.log("upstream_finished")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self._saw_disconnect()
            raise
        return response

    # -- holding calls ---------------------------------------------------------------------------

    def _enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def _saw_disconnect(self) -> None:
        self.log("upstream_saw_disconnect")
        self.stream_closed.set()

    async def _wait_for_peers(self, request: web.Request) -> bool:
        deadline = time.monotonic() + 5
        # Once that many were in flight together, every one of them may go on.
        while self.max_in_flight < self.hold_until_in_flight and time.monotonic() < deadline:
            if request.transport is None or request.transport.is_closing():
                return False
            await asyncio.sleep(0.01)
        return True

    async def _gate(self, request: web.Request) -> bool:
        """Wait for `release`; False (and the disconnect noted) if the caller hung up meanwhile."""
        deadline = time.monotonic() + 10
        while not self.release.is_set() and time.monotonic() < deadline:
            if request.transport is None or request.transport.is_closing():
                self._saw_disconnect()
                return False
            await asyncio.sleep(0.01)
        return True
