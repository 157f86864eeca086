"""Images API (generations, edits): route, fail over, the §4.3 url rule, delivery, usage record.

Gemini channels go through the provider's typed call with the client's model name (`model_defaults`
and the channel's model lists are keyed by it, §4.2, §6.1); their images arrive decoded when they will
be stored. Input images are resolved once per request (pipeline → `images.resolver`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.domain import Caller, ImageCall, ImagePart, ImageResolver, JSONObject, Operation, Target, Usage
from gateway.errors import (
    GatewayError,
    ImageURLNotAvailable,
    InvalidRequest,
    UpstreamError,
    UpstreamStreamInterrupted,
)
from gateway.images.output import Delivery, Format, deliver
from gateway.images.sniff import require_image
from gateway.pipeline.attempts import with_failover
from gateway.pipeline.common import Ledger, open_ledger
from gateway.providers.base import EventStream
from gateway.providers.gemini.relay import CompletedEvents
from gateway.providers.gemini.request import images_request
from gateway.providers.gemini.response import no_image_error
from gateway.providers.gemini.shape import images_answer
from gateway.runtime import Runtime
from gateway.settings import ChannelSettings


@dataclass(frozen=True, slots=True)
class ImageRequest:
    operation: Operation
    body: JSONObject  # every field the client sent but files; `images`/`mask` of JSON edits included
    model: str
    group: str | None
    response_format: Format | None  # as the client sent it
    stream: bool = False
    files: tuple[ImagePart, ...] = ()  # multipart edits: the client's files, types sniffed
    multipart: bool = False  # the client sent multipart


@dataclass(frozen=True, slots=True)
class ImageResult:
    body: JSONObject
    warnings: list[str] = field(default_factory=list)


def wanted_format(rt: Runtime, req: ImageRequest, channel: ChannelSettings) -> Format | None:
    """§4.3: the client's choice, else the channel's default, else by model family; None = as answered."""
    if req.response_format is not None:
        return req.response_format
    if channel.default_response_format is not None:
        return channel.default_response_format
    model = channel.upstream_model(req.model).lower()
    if model.startswith("gpt-image"):
        return "b64_json"
    if model.startswith("dall-e"):
        return "url"
    if channel.kind == "gemini":
        return "url" if rt.store is not None else "b64_json"
    return None


def base64_only(channel: ChannelSettings) -> bool:
    """Channels known to answer base64 whatever is asked."""
    return channel.kind == "gemini" or channel.response_format == "unsupported"


def _usable(rt: Runtime, req: ImageRequest, channels: list[ChannelSettings]) -> list[ChannelSettings]:
    """Without storage, a channel that can only answer base64 cannot give a URL: don't spend a call on it."""
    if rt.store is not None:
        return channels
    if req.response_format != "url":
        return channels  # only a client that insists on URLs is refused; others get base64 and a warning
    usable = [c for c in channels if not base64_only(c)]
    if not usable:
        raise ImageURLNotAvailable(
            "response_format=url needs object storage for this model, and none is configured.",
            param="response_format",
        )
    return usable


class _Inputs:
    """JSON edits sent to a multipart channel: the client's image URLs, fetched once for all attempts."""

    def __init__(self, req: ImageRequest, resolve: ImageResolver) -> None:
        self._req, self.resolve = req, resolve
        self._files: tuple[ImagePart, ...] | None = None
        self._lock = asyncio.Lock()

    async def files(self) -> tuple[ImagePart, ...]:
        async with self._lock:
            if self._files is None:
                self._files = await self._load()
            return self._files

    async def _load(self) -> tuple[ImagePart, ...]:
        refs = [i.get("image_url") for i in self._req.body.get("images") or [] if isinstance(i, dict)]
        parts = []
        for n, url in enumerate(refs):
            if not url:
                raise InvalidRequest(
                    "This model takes input images as image_url (https or data: URL), not file_id.",
                    param=f"images[{n}].image_url",
                )
            field = "image" if len(refs) == 1 else "image[]"
            parts.append(await self._part(field, f"image_{n}", str(url), f"images[{n}].image_url"))
        mask = self._req.body.get("mask")
        if isinstance(mask, dict) and mask.get("image_url"):
            parts.append(await self._part("mask", "mask", str(mask["image_url"]), "mask.image_url"))
        return tuple(parts)

    async def _part(self, field: str, stem: str, url: str, what: str) -> ImagePart:
        image = await self.resolve(url, what)
        info = require_image(image.data, what)
        return ImagePart(field, f"{stem}.{info.ext}", image.data, info.mime)


async def _build_call(
    rt: Runtime, req: ImageRequest, target: Target, inputs: _Inputs, *, send_format: bool
) -> ImageCall:
    channel = target.channel
    body = {**req.body, "model": channel.upstream_model(req.model)}
    body.pop("response_format", None)
    if send_format and req.response_format is not None:
        body["response_format"] = req.response_format
    # Images that will be stored may arrive decoded: no base64 text copy of them is ever built.
    decode = rt.store is not None and not req.stream and wanted_format(rt, req, channel) == "url"
    if req.multipart:
        return ImageCall(req.operation, body, req.files, multipart=True, decode_images=decode)
    if req.operation == "images.edit" and channel.edits_format == "multipart":
        body.pop("images", None)
        body.pop("mask", None)
        return ImageCall(req.operation, body, await inputs.files(), multipart=True, decode_images=decode)
    return ImageCall(req.operation, body, decode_images=decode)


def _rejects_response_format(err: UpstreamError) -> bool:
    return err.upstream_status == 400 and (err.param == "response_format" or "response_format" in err.message)


async def _gemini(
    rt: Runtime, req: ImageRequest, target: Target, call: ImageCall, resolve: ImageResolver
) -> JSONObject:
    """One attempt on a Gemini channel: `n` concurrent calls; no image at all is a 400 (§4.2)."""
    request = await images_request(call, channel=target.channel, model=req.model, resolve=resolve)
    answers = await rt.providers.gemini.generate(target, request)
    if not any(a.images for a in answers):
        raise no_image_error(answers)
    return images_answer(answers, decoded=call.decode_images)


async def _call_upstream(rt: Runtime, req: ImageRequest, target: Target, inputs: _Inputs) -> JSONObject:
    """One failover attempt; §4.3 step 2 (retry once here without response_format) is part of it."""
    if target.channel.kind == "gemini":
        call = await _build_call(rt, req, target, inputs, send_format=False)
        return await _gemini(rt, req, target, call, inputs.resolve)
    provider = rt.providers.for_channel(target.channel)
    send_format = target.channel.response_format != "unsupported"
    try:
        return await provider.images(
            target, await _build_call(rt, req, target, inputs, send_format=send_format)
        )
    except UpstreamError as err:
        if not (send_format and req.response_format is not None and _rejects_response_format(err)):
            raise
    return await provider.images(target, await _build_call(rt, req, target, inputs, send_format=False))


def _record(ledger: Ledger, req: ImageRequest, target: Target, answer: JSONObject) -> None:
    record = ledger.record
    record.channel = target.channel.name
    record.upstream_model = target.channel.upstream_model(req.model)
    data = answer.get("data")
    record.image_count = len(data) if isinstance(data, list) else 0
    size, quality = (
        req.body.get("size") or answer.get("size"),
        req.body.get("quality") or answer.get("quality"),
    )
    record.image_size = str(size) if size else None
    record.image_quality = str(quality) if quality else None
    usage = Usage.from_openai(answer.get("usage"))
    if usage is not None:
        record.usage = usage


async def generate(
    rt: Runtime, caller: Caller, req: ImageRequest, *, request_id: str, endpoint: str
) -> ImageResult:
    ledger = await open_ledger(
        rt, caller, request_id=request_id, endpoint=endpoint, model=req.model, group=req.group,
        operation=req.operation, stream=False, body=req.body,
    )  # fmt: skip
    try:
        channels = _usable(rt, req, list(ledger.channels))
        await ledger.reserve()
        inputs = _Inputs(req, rt.resolver.for_request())
        answer, target = await with_failover(
            rt, channels, ledger.record.attempts, lambda t: _call_upstream(rt, req, t, inputs)
        )
        _record(ledger, req, target, answer)
        delivery = Delivery(
            wanted=wanted_format(rt, req, target.channel),
            store=rt.store,
            fetcher=rt.fetcher,
            upload_attempts=rt.settings.storage.upload_attempts,
            rehost_urls=rt.settings.storage.rehost == "always" or target.channel.rehost_urls,
            base64_allowed=req.response_format is None,
        )
        data = answer.get("data")
        warnings = await deliver(data if isinstance(data, list) else [], delivery)
    except BaseException as exc:
        ledger.close(exc)
        raise
    await ledger.done()
    return ImageResult(answer, warnings)


async def stream(
    rt: Runtime, caller: Caller, req: ImageRequest, *, request_id: str, endpoint: str
) -> AsyncGenerator[bytes, None]:
    """§4.5: the upstream's partial-image events pass through; the final `*.completed` event is billed."""
    ledger = await open_ledger(
        rt, caller, request_id=request_id, endpoint=endpoint, model=req.model, group=req.group,
        operation=req.operation, stream=True, body=req.body,
    )  # fmt: skip
    inputs = _Inputs(req, rt.resolver.for_request())

    async def open_one(target: Target) -> EventStream:
        call = await _build_call(
            rt, req, target, inputs, send_format=target.channel.response_format != "unsupported"
        )
        if target.channel.kind == "gemini":  # no partial images: one completed event per image
            return CompletedEvents(await _gemini(rt, req, target, call, inputs.resolve), req.operation)
        return await rt.providers.for_channel(target.channel).open_images_stream(target, call)

    try:
        await ledger.reserve()
        upstream, target = await with_failover(rt, ledger.channels, ledger.record.attempts, open_one)
    except BaseException as exc:
        ledger.close(exc)
        raise
    ledger.record.channel = target.channel.name
    ledger.record.upstream_model = target.channel.upstream_model(req.model)
    return _relay(ledger, upstream, target.channel.name)


async def _relay(ledger: Ledger, upstream: EventStream, channel: str) -> AsyncGenerator[bytes, None]:
    """The events as they come; a stream that stops before its `*.completed` event ends with an
    `upstream_stream_interrupted` error event."""
    completed = False
    try:
        async for event, data in upstream.events():
            ledger.ttfb()
            if event is not None and event.endswith(b".completed"):
                completed = True
                _count_completed(ledger, data)
            data = data.replace(b"\n", b"\ndata: ")  # multi-line data: one `data:` field per line (SSE)
            yield (b"event: " + event + b"\n" if event else b"") + b"data: " + data + b"\n\n"
        if not completed:
            raise UpstreamStreamInterrupted(
                f"channel {channel}: the upstream's stream stopped before its completed event"
            )
        await ledger.done()
    except GatewayError as exc:
        ledger.close(exc)
        raise
    finally:
        await upstream.aclose()
        ledger.close(asyncio.CancelledError())


def _count_completed(ledger: Ledger, data: bytes) -> None:
    try:
        event: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    ledger.record.image_count += 1
    if isinstance(event, dict):
        usage = Usage.from_openai(event.get("usage"))
        if usage is not None:
            ledger.record.usage = usage
