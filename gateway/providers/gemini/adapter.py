"""The call to a `kind: gemini` channel (Google's native `generateContent` API), and the Provider protocol.

The API key travels in the `x-goog-api-key` header, never in the URL, so it never lands in a log line.
`n` > 1 images are that many calls, run concurrently (at most MAX_PARALLEL_CALLS at a time), results
in call order. Translation lives in request.py / response.py / stream.py; this module only sends.

The typed methods (`generate`, `open_stream`) are what the pipeline uses: they return decoded images
with their thought signatures. The Provider protocol methods (`chat`, `open_chat_stream`, `images`,
`open_images_stream`) give the OpenAI shapes, with chat images as `data:` URLs.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import aiohttp

from gateway.domain import ImageCall, ImageResolver, JSONObject, Operation, Target
from gateway.errors import UpstreamTooLarge
from gateway.providers.body import read_body
from gateway.providers.gemini import request as translate
from gateway.providers.gemini.errors import gemini_error
from gateway.providers.gemini.relay import CompletedEvents, OpenAIChunks
from gateway.providers.gemini.request import GenerateRequest
from gateway.providers.gemini.response import Answer, answer, load, no_image_error
from gateway.providers.gemini.shape import chat_completion, data_url, images_answer
from gateway.providers.gemini.stream import GeminiStream
from gateway.providers.openai.http import timeout_for, transport_error

log = logging.getLogger("gateway.providers.gemini")
MAX_PARALLEL_CALLS = 4
ERROR_BODY_BYTES = 1 << 20
API_VERSION = "v1beta"


def model_url(target: Target, model: str, *, stream: bool) -> str:
    name = model.removeprefix("models/")
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{target.channel.base_url}/{API_VERSION}/models/{quote(name, safe='-._~')}:{method}"


def headers(target: Target, *, stream: bool = False) -> dict[str, str]:
    sent = {**target.channel.headers, "Content-Type": "application/json"}
    key = target.api_key
    if key:
        sent["x-goog-api-key"] = key
    if stream:
        sent["Accept"] = "text/event-stream"
    return sent


class GeminiProvider:
    operations: frozenset[Operation] = frozenset({"chat", "images.generate", "images.edit"})

    def __init__(
        self,
        session: aiohttp.ClientSession,
        max_response_bytes: int,
        resolve: ImageResolver,
    ) -> None:
        self._session = session
        self._max_bytes = max_response_bytes
        self._resolve = resolve

    # -- typed calls ---------------------------------------------------------------------------

    async def _call(self, target: Target, request: GenerateRequest, payload: bytes) -> Answer:
        url = model_url(target, request.model, stream=False)
        try:
            async with self._session.post(
                url, data=payload, headers=headers(target), timeout=timeout_for(target)
            ) as resp:
                raw = await read_body(resp, self._max_bytes, target.channel.name)
                if resp.status != 200:
                    raise gemini_error(resp.status, bytes(raw), resp.headers, target.channel)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, target) from None
        frame = load(raw, target.channel, keep_base64=request.keep_base64)
        del raw
        return answer(frame, target.channel)

    async def generate(self, target: Target, request: GenerateRequest) -> list[Answer]:
        """`request.calls` calls; the answers of those that succeeded, in call order.

        When some calls fail and others answer, the answers are kept (their images were made and
        paid for) and the failures logged; when all fail, the first call's error is raised.
        """
        payload = request.payload()
        if request.calls == 1:
            return [await self._call(target, request, payload)]
        slots = asyncio.Semaphore(MAX_PARALLEL_CALLS)

        async def one() -> Answer:
            async with slots:
                return await self._call(target, request, payload)

        results = await asyncio.gather(*(one() for _ in range(request.calls)), return_exceptions=True)
        answers = [r for r in results if isinstance(r, Answer)]
        errors = [r for r in results if not isinstance(r, Answer)]
        for error in errors:
            if not isinstance(error, Exception):
                raise error  # cancellation and the like: not a failed call
        if not answers:
            raise errors[0]
        if errors:
            log.warning(
                "channel %s: %d of %d calls failed, the first with: %s",
                target.channel.name, len(errors), request.calls, errors[0],
            )  # fmt: skip
        return answers

    async def open_stream(self, target: Target, request: GenerateRequest) -> GeminiStream:
        """Send a streamed request; returns once the first frame is read (a refusal there raises)."""
        url = model_url(target, request.model, stream=True)
        limit = target.channel.timeout_seconds
        # A stream may run long: bound the wait for each read, not the whole answer.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(10.0, limit), sock_read=limit)
        try:
            response = await self._session.post(
                url, data=request.payload(), headers=headers(target, stream=True), timeout=timeout
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, target) from None
        if response.status != 200:
            raw: bytes | bytearray
            try:  # an error object is small: read at most the first MiB of whatever came
                raw = await read_body(response, min(self._max_bytes, ERROR_BODY_BYTES), target.channel.name)
            except (aiohttp.ClientError, TimeoutError, UpstreamTooLarge):
                raw = b""
            finally:
                response.release()
            raise gemini_error(response.status, bytes(raw), response.headers, target.channel)
        stream = GeminiStream(response, target, self._max_bytes)
        try:
            await stream.start()
        except BaseException:
            await stream.aclose()
            raise
        return stream

    # -- the Provider protocol -------------------------------------------------------------------

    async def chat(self, target: Target, body: JSONObject) -> JSONObject:
        model = str(body.get("model", ""))
        request = await translate.chat_request(
            body, channel=target.channel, model=model, resolve=self._resolve
        )
        (reply,) = await self.generate(target, request)
        return chat_completion(reply, model=model, image_urls=[data_url(i) for i in reply.images])

    async def open_chat_stream(self, target: Target, body: JSONObject) -> OpenAIChunks:
        model = str(body.get("model", ""))
        request = await translate.chat_request(
            body, channel=target.channel, model=model, resolve=self._resolve
        )
        return OpenAIChunks(await self.open_stream(target, request), model)

    async def images(self, target: Target, call: ImageCall) -> JSONObject:
        model = str(call.body.get("model", ""))
        request = await translate.images_request(
            call, channel=target.channel, model=model, resolve=self._resolve
        )
        answers = await self.generate(target, request)
        if not any(a.images for a in answers):
            raise no_image_error(answers)
        return images_answer(answers, decoded=call.decode_images)

    async def open_images_stream(self, target: Target, call: ImageCall) -> CompletedEvents:
        """Gemini has no partial images: the answer comes as one `*.completed` event per image (§4.5)."""
        answer_body = await self.images(target, call)
        return CompletedEvents(answer_body, call.operation)
