"""The built-in `mock` upstream: deterministic text and PNG images, configurable latency and failures.

It serves the quick start, the demo and the tests, and never calls out. Chat to an image model (`mock-image`,
any name containing `image`) answers like an image-capable chat upstream: a short text and a real PNG as a
`data:` URL, both in the markdown of `content` and in `images[]` (OpenRouter's shape), which the pipeline
re-hosts and shows the §3.2 way like any upstream's image.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import struct
import time
import zlib
from collections.abc import AsyncIterator

import orjson

from gateway.domain import ImageCall, JSONObject, Operation, Target
from gateway.errors import InvalidRequest, UpstreamError
from gateway.settings import MockSettings

IMAGE_TOKENS = 1290  # what one 1K image costs on Gemini image models (UPSTREAM.md §5)


def render_png(seed: str, size: int) -> bytes:
    """A real PNG whose pixels depend on `seed`: the same prompt gives the same bytes."""
    digest = hashlib.sha256(seed.encode()).digest()
    r0, g0, b0, r1, g1, b1 = digest[:6]
    rows = bytearray()
    for y in range(size):
        rows.append(0)  # filter: none
        t = y / max(size - 1, 1)
        row = bytes(
            (int(r0 + (r1 - r0) * t) & 0xFF, int(g0 + (g1 - g0) * t) & 0xFF, int(b0 + (b1 - b0) * t) & 0xFF)
        )
        rows += row * size

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows)))
        + chunk(b"IEND", b"")
    )


def _last_user_text(body: JSONObject) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
                )
    return ""


class MockProvider:
    operations: frozenset[Operation] = frozenset({"chat", "images.generate", "images.edit"})

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    async def _behave(self, settings: MockSettings, target: Target) -> None:
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        if settings.failure_rate and self._rng.random() < settings.failure_rate:
            raise UpstreamError(
                f"channel {target.channel.name}: mock failure", upstream_status=500, retryable=True
            )

    def _reply(self, body: JSONObject, image: str | None = None) -> tuple[str, JSONObject]:
        prompt = _last_user_text(body)
        if image is not None:
            text = f"Mock image for: {prompt[:200]}" if prompt else "Mock image."
        else:
            text = f"Mock reply to: {prompt[:200]}" if prompt else "Mock reply."
        prompt_tokens = max(1, len(prompt.split()))
        completion_tokens = len(text.split()) + (IMAGE_TOKENS if image else 0)
        usage: JSONObject = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if image is not None:
            usage["completion_tokens_details"] = {
                "text_tokens": completion_tokens - IMAGE_TOKENS,
                "image_tokens": IMAGE_TOKENS,
            }
        return text, usage

    @staticmethod
    def _image(target: Target, body: JSONObject) -> str | None:
        """The `data:` URL of the image an image model draws for the last user text, else None."""
        if "image" not in str(body.get("model", "")).lower():
            return None
        png = render_png(_last_user_text(body), target.channel.mock.image_size)
        return "data:image/png;base64," + base64.b64encode(png).decode()

    async def chat(self, target: Target, body: JSONObject) -> JSONObject:
        await self._behave(target.channel.mock, target)
        image = self._image(target, body)
        text, usage = self._reply(body, image)
        message: JSONObject = {"role": "assistant", "content": text}
        if image is not None:
            message["content"] = f"{text}\n\n![image]({image})"
            message["images"] = [{"type": "image_url", "image_url": {"url": image}}]
        return {
            "id": f"chatcmpl-mock{random.getrandbits(64):016x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage,
        }

    async def open_chat_stream(self, target: Target, body: JSONObject) -> MockStream:
        await self._behave(target.channel.mock, target)
        image = self._image(target, body)
        return MockStream(body, *self._reply(body, image), target.channel.mock, image)

    async def images(self, target: Target, call: ImageCall) -> JSONObject:
        """Answers like gpt-image models: base64 PNGs, one per `n`, and token usage."""
        await self._behave(target.channel.mock, target)
        prompt = str(call.body.get("prompt", ""))
        seed = prompt + "".join(hashlib.sha256(p.data).hexdigest() for p in call.files)
        n = call.body.get("n") or 1
        if not isinstance(n, int) or not 1 <= n <= 10:
            raise InvalidRequest("n must be between 1 and 10", param="n")
        size = target.channel.mock.image_size
        data = [
            {"b64_json": base64.b64encode(render_png(f"{seed}#{i}", size)).decode(), "revised_prompt": prompt}
            for i in range(n)
        ]
        prompt_tokens = max(1, len(prompt.split()))
        return {
            "created": int(time.time()),
            "data": data,
            "output_format": "png",
            "size": f"{size}x{size}",
            "usage": {
                "input_tokens": prompt_tokens,
                "output_tokens": 272 * n,
                "total_tokens": prompt_tokens + 272 * n,
                "input_tokens_details": {"text_tokens": prompt_tokens, "image_tokens": 0},
            },
        }

    async def open_images_stream(self, target: Target, call: ImageCall) -> MockStream:
        raise UpstreamError(
            f"channel {target.channel.name}: the mock upstream does not stream images",
            status=400,
            upstream_status=400,
        )


class MockStream:
    def __init__(
        self, body: JSONObject, text: str, usage: JSONObject, settings: MockSettings, image: str | None = None
    ) -> None:
        self._body, self._text, self._usage, self._settings = body, text, usage, settings
        self._image = image

    async def __aiter__(self) -> AsyncIterator[bytes]:
        base = {
            "id": f"chatcmpl-mock{random.getrandbits(64):016x}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self._body.get("model"),
        }
        words = self._text.split(" ")
        n = min(self._settings.stream_chunks, len(words))
        step = -(-len(words) // n)
        pieces = [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
        for i, piece in enumerate(pieces):
            delta: JSONObject = {"content": piece if i == 0 else " " + piece}
            if i == 0:
                delta["role"] = "assistant"
            yield orjson.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            await asyncio.sleep(0)
        if self._image is not None:  # the image after the text, in one chunk (§3.3)
            delta = {
                "content": f"\n\n![image]({self._image})",
                "images": [{"type": "image_url", "image_url": {"url": self._image}}],
            }
            yield orjson.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        yield orjson.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        options = self._body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            yield orjson.dumps({**base, "choices": [], "usage": self._usage})
        yield b"[DONE]"

    async def events(self) -> AsyncIterator[tuple[bytes | None, bytes]]:
        async for data in self:
            yield None, data

    async def batches(self) -> AsyncIterator[list[tuple[bytes | None, bytes]]]:
        async for data in self:
            yield [(None, data)]

    async def aclose(self) -> None:
        return None
