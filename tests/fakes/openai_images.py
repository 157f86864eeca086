"""A fake OpenAI Images API upstream, plus the image hosts client-image tests point the gateway at.

The first path segment picks a behaviour, so one server stands in for several channels:

- `gptimage`: a GPT image model. Any request carrying `response_format` gets HTTP 400 with the exact
  body GPT image models send (tests/fixtures/openai_images/); otherwise the answer has `data[].b64_json`
  plus `background, output_format, quality, size, usage`. `stream: true` answers SSE events.
  `size: "7x7"` gets a 400 `invalid_value` about `size` (a 400 that does not name `response_format`).
- `dalle`: accepts `response_format`; `url` (the default) answers `data[].url` pointing at
  `GET /img/{name}.png` on this server, `b64_json` answers base64.
- `b64only`: ignores `response_format`, always answers `b64_json`.
- `urlonly`: ignores `response_format`, always answers `url`.
- `fail500`: HTTP 500 with OpenAI's error object.
- `slow`: sleeps `slow_seconds`, then answers like `gptimage`.
- `big`: like `gptimage`, with a ~4 MB PNG of incompressible pixels.
- `multiline`: like `gptimage`, but each SSE event's JSON is pretty-printed over several `data:` lines
  (valid SSE: the lines of one event are joined with newlines).
- `dataurl`: ignores `response_format`, answers `data[].url` holding a `data:image/png;base64,` URL
  (what some OpenAI-compatible relays do).

Images are real PNGs made with Pillow, the same bytes for the same prompt (`make_png`). Every call is
recorded: behaviour, path, content type, headers, and the JSON body or the multipart fields and files
(field name, filename, content type, bytes), with the images answered and, for streams, the exact bytes sent.

`/client/...` routes serve images (and traps) for client-supplied image URLs; their hits are recorded too.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import hashlib
import io
import json
import random
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, hdrs, web
from PIL import Image

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openai_images"
GPT_BEHAVIOURS = frozenset(
    {"gptimage", "slow", "big", "multiline"}
)  # reject response_format like GPT image models
METADATA_URL = "http://169.254.169.254/latest/meta-data"
PRIVATE_URL = "http://10.0.0.1/x.png"
HTML = b"<!doctype html><html><body>not an image</body></html>"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@functools.lru_cache(maxsize=256)
def make_png(seed: str, size: tuple[int, int] = (256, 256)) -> bytes:
    """A PNG whose colours come from `seed`: the same bytes for the same seed, different for another."""
    digest = hashlib.sha256(seed.encode()).digest()
    image = Image.new("RGB", size, (digest[0], digest[1], digest[2]))
    for i in range(3, 30, 3):  # a few seeded pixels so that near-equal seeds differ too
        image.putpixel((digest[i] % size[0], digest[i + 1] % size[1]), (digest[i + 2], 0, 255))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def big_png() -> bytes:
    """About 4 MB: random pixels do not compress, so the PNG stays as large as the raw data."""
    side = 1160
    pixels = random.Random(20240902).randbytes(side * side * 3)
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def make_jpeg(size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buf, format="JPEG")
    return buf.getvalue()


async def _sleep_unless_gone(request: web.Request, seconds: float) -> bool:
    """Sleep, but stop as soon as the caller hangs up (so no handler outlives the test); False if it did."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
        await asyncio.sleep(0.02)
    return True


@dataclass
class FilePart:
    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Recorded:
    behaviour: str
    endpoint: str  # "generations" or "edits"
    path: str
    content_type: str  # without parameters
    headers: dict[str, str]
    json: dict[str, Any] | None = None
    fields: dict[str, str] = field(default_factory=dict)  # multipart scalar fields
    files: list[FilePart] = field(default_factory=list)  # multipart files, in order
    produced: list[bytes] = field(default_factory=list)  # the images answered, in `data` order
    stream_bytes: bytes = b""  # everything written on an SSE answer

    @property
    def multipart(self) -> bool:
        return self.content_type == "multipart/form-data"

    @property
    def body(self) -> dict[str, Any]:
        """The JSON body, or the scalar multipart fields."""
        return self.json if self.json is not None else dict(self.fields)


@dataclass
class FakeOpenAIImages:
    calls: list[Recorded] = field(default_factory=list)
    client_hits: list[str] = field(default_factory=list)
    served: dict[str, bytes] = field(default_factory=dict)  # /img/{name}.png
    lock: threading.Lock = field(default_factory=threading.Lock)
    slow_seconds: float = 2.0
    client_slow_seconds: float = 3.0
    huge_bytes: int = 3 * 1024 * 1024 // 2  # 1.5 MB: over a 1 MB download limit

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.client_hits.clear()

    def calls_for(self, behaviour: str | None = None) -> list[Recorded]:
        with self.lock:
            return [c for c in self.calls if behaviour is None or c.behaviour == behaviour]

    def count(self, behaviour: str | None = None) -> int:
        return len(self.calls_for(behaviour))

    def last(self, behaviour: str | None = None) -> Recorded:
        return self.calls_for(behaviour)[-1]

    def hits(self) -> list[str]:
        with self.lock:
            return list(self.client_hits)

    # -- the application -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._record_client_hits])
        app.router.add_post("/{behaviour}/v1/images/{endpoint:generations|edits}", self.images)
        app.router.add_get("/img/{name}.png", self.image_file)
        app.router.add_get("/client/ok.png", self.client_ok)
        app.router.add_get("/client/ok.jpg", self.client_jpeg)
        app.router.add_get("/client/notimage", self.client_notimage)
        app.router.add_get("/client/redirect-to-metadata", self.client_redirect(METADATA_URL))
        app.router.add_get("/client/redirect-to-private", self.client_redirect(PRIVATE_URL))
        app.router.add_get("/client/redirect-once", self.client_redirect("/client/ok.png"))
        app.router.add_get("/client/loop/{n}", self.client_loop)
        app.router.add_get("/client/huge", self.client_huge)
        app.router.add_get("/client/huge-chunked", self.client_huge_chunked)
        app.router.add_get("/client/slow", self.client_slow)
        return app

    @web.middleware
    async def _record_client_hits(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/client/"):
            with self.lock:
                self.client_hits.append(request.path)
        return await handler(request)

    async def images(self, request: web.Request) -> web.StreamResponse:
        behaviour = request.match_info["behaviour"]
        record = await self._record(request, behaviour, request.match_info["endpoint"])
        body = record.body
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            error = {
                "message": "no key",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
            return web.json_response({"error": error}, status=401)
        if behaviour == "fail500":
            return web.json_response(fixture("error_500.json"), status=500)
        if behaviour == "slow" and not await _sleep_unless_gone(request, self.slow_seconds):
            return web.Response(status=499)
        if behaviour in GPT_BEHAVIOURS and "response_format" in body:
            return web.json_response(fixture("error_unknown_parameter_response_format.json"), status=400)
        if behaviour in GPT_BEHAVIOURS and body.get("size") == "7x7":
            return web.json_response(fixture("error_400_invalid_size.json"), status=400)
        prompt = str(body.get("prompt") or "")
        n = int(body.get("n") or 1)
        images = [big_png() if behaviour == "big" else make_png(f"{prompt}#{i}") for i in range(n)]
        record.produced = images
        if body.get("stream") in (True, "true"):
            return await self._stream(request, record, images[0])
        if behaviour in GPT_BEHAVIOURS or behaviour == "b64only":
            return self._gpt_answer(body, images)
        if behaviour == "dalle":
            as_url = body.get("response_format", "url") == "url"
            return self._dalle_answer(request, prompt, images, as_url=as_url)
        if behaviour == "urlonly":
            return self._dalle_answer(request, prompt, images, as_url=True)
        if behaviour == "dataurl":
            data = [{"url": "data:image/png;base64," + base64.b64encode(img).decode()} for img in images]
            return web.json_response({"created": 1758541477, "data": data})
        return web.json_response({"error": {"message": f"unknown behaviour {behaviour}"}}, status=404)

    async def _record(self, request: web.Request, behaviour: str, endpoint: str) -> Recorded:
        record = Recorded(
            behaviour=behaviour,
            endpoint=endpoint,
            path=request.path,
            content_type=request.content_type,
            headers=dict(request.headers),
        )
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                assert isinstance(part, BodyPartReader), "nested multipart is not expected"
                if part.filename is not None:
                    data = await part.read(decode=False)
                    ctype = part.headers.get(hdrs.CONTENT_TYPE)
                    record.files.append(FilePart(part.name or "", part.filename, ctype, bytes(data)))
                else:
                    record.fields[part.name or ""] = await part.text()
        else:
            record.json = await request.json()
        with self.lock:
            self.calls.append(record)
        return record

    @staticmethod
    def _gpt_answer(body: dict[str, Any], images: list[bytes]) -> web.Response:
        answer = copy.deepcopy(fixture("gpt_image_response.json"))
        answer["data"] = [{"b64_json": base64.b64encode(img).decode()} for img in images]
        for key in ("quality", "size", "background", "output_format"):
            if body.get(key):
                answer[key] = body[key]
        return web.json_response(answer)

    def _dalle_answer(
        self, request: web.Request, prompt: str, images: list[bytes], *, as_url: bool
    ) -> web.Response:
        answer = copy.deepcopy(fixture("dalle_response.json"))
        data = []
        for img in images:
            item: dict[str, str] = {"revised_prompt": f"{prompt}, revised"}
            if as_url:
                item["url"] = self.publish(request, img)
            else:
                item["b64_json"] = base64.b64encode(img).decode()
            data.append(item)
        answer["data"] = data
        return web.json_response(answer)

    def publish(self, request: web.Request, data: bytes) -> str:
        name = uuid.uuid4().hex
        with self.lock:
            self.served[name] = data
        return f"http://{request.host}/img/{name}.png"

    async def _stream(self, request: web.Request, record: Recorded, final: bytes) -> web.StreamResponse:
        """SSE as UPSTREAM.md §3: `partial_images` partial events, then the completed event with usage."""
        body = record.body
        prefix = "image_generation" if record.endpoint == "generations" else "image_edit"
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        prompt = str(body.get("prompt") or "")
        for index in range(int(body.get("partial_images") or 0)):
            event = fixture("stream_partial_image.json")
            event["type"] = f"{prefix}.partial_image"
            event["partial_image_index"] = index
            event["b64_json"] = base64.b64encode(make_png(f"{prompt}#partial{index}", (64, 64))).decode()
            await self._write_event(response, record, event, multiline=record.behaviour == "multiline")
        event = fixture("stream_completed.json")
        event["type"] = f"{prefix}.completed"
        event["b64_json"] = base64.b64encode(final).decode()
        await self._write_event(response, record, event, multiline=record.behaviour == "multiline")
        await response.write_eof()
        return response

    @staticmethod
    async def _write_event(
        response: web.StreamResponse, record: Recorded, event: dict[str, Any], *, multiline: bool = False
    ) -> None:
        text = json.dumps(event, indent=1) if multiline else json.dumps(event)
        data = "".join(f"data: {line}\n" for line in text.split("\n"))
        frame = f"event: {event['type']}\n{data}\n".encode()
        record.stream_bytes += frame  # before writing: the test may read it as soon as the gateway relays
        await response.write(frame)
        await asyncio.sleep(0.01)  # separate TCP writes, as a real stream would be

    async def image_file(self, request: web.Request) -> web.Response:
        with self.lock:
            data = self.served.get(request.match_info["name"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="image/png")

    # -- client-supplied image URLs ---------------------------------------------------------------

    async def client_ok(self, request: web.Request) -> web.Response:
        return web.Response(body=make_png("client-ok", (48, 32)), content_type="image/png")

    async def client_jpeg(self, request: web.Request) -> web.Response:
        return web.Response(body=make_jpeg(), content_type="image/jpeg")

    async def client_notimage(self, request: web.Request) -> web.Response:
        return web.Response(body=HTML, content_type="image/png")  # the claimed type is a lie

    @staticmethod
    def client_redirect(location: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            raise web.HTTPFound(location)

        return handler

    async def client_loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/client/loop/{int(request.match_info['n']) + 1}")

    def _huge_body(self) -> bytes:
        png = make_png("client-ok", (48, 32))
        return png + b"\0" * (self.huge_bytes - len(png))

    async def client_huge(self, request: web.Request) -> web.Response:
        return web.Response(body=self._huge_body(), content_type="image/png")  # with Content-Length

    async def client_huge_chunked(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        data = self._huge_body()
        try:
            for start in range(0, len(data), 64 * 1024):
                await response.write(data[start : start + 64 * 1024])
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the gateway hung up at its limit
        return response

    async def client_slow(self, request: web.Request) -> web.Response:
        if not await _sleep_unless_gone(request, self.client_slow_seconds):
            return web.Response(status=499)
        return web.Response(body=make_png("client-ok", (48, 32)), content_type="image/png")
