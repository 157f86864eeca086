"""Chat completions: route, fail over, relay (non-stream or SSE), and keep the usage record.

OpenAI-compatible and mock channels answer in OpenAI's shape, relayed with their images re-hosted;
Gemini channels go through their typed calls (pipeline/chat_gemini.py). Images are shown the §3.2 way
(markdown, `images[]`, `image` per `chat_image_field`) by `images.chat_shape`, whatever the upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

import orjson

from gateway.domain import Caller, ImageResolver, JSONObject, Target, Usage
from gateway.errors import GatewayError, UpstreamStreamInterrupted
from gateway.images.chat_images import ChatImages
from gateway.images.chat_shape import ImageField, image_field, show
from gateway.pipeline import chat_gemini
from gateway.pipeline.attempts import with_failover
from gateway.pipeline.common import Ledger, open_ledger
from gateway.providers.base import ChatStream
from gateway.providers.gemini.response import Answer
from gateway.providers.gemini.stream import GeminiStream
from gateway.providers.sse import DONE, PlainRun, SSEEvent, plain_datas
from gateway.runtime import Runtime


@dataclass(frozen=True, slots=True)
class ChatRequest:
    body: JSONObject  # the client's body, gateway-only fields removed; forwarded as is
    model: str
    group: str | None
    stream: bool
    include_usage: bool  # the client asked for the usage chunk


def _upstream_body(req: ChatRequest, target: Target) -> JSONObject:
    body = {**req.body, "model": target.channel.upstream_model(req.model)}
    if req.stream:
        # Always ask for usage, so the request can be billed; stripped again if the client didn't ask.
        options = req.body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return body


def _settle(
    rt: Runtime, ledger: Ledger, req: ChatRequest, target: Target, field: ImageField = "none"
) -> ChatImages:
    ledger.record.channel = target.channel.name
    ledger.record.upstream_model = target.channel.upstream_model(req.model)
    return ChatImages(
        rt.store,
        rt.fetcher,
        rt.settings.storage.upload_attempts,
        target.channel.rehost_urls,
        keep_data=field == "list_data",
    )


async def _rehost_choices(
    images: ChatImages, answer: JSONObject, key: str, field: ImageField = "none", lead: str = ""
) -> None:
    """Re-host and show (§3.2) the images of every choice's `message` (or stream `delta`)."""
    choices = answer.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get(key) if isinstance(choice, dict) else None
        if isinstance(message, dict) and ChatImages.may_hold_images(message):
            show(message, await images.message(message), field, lead=lead)


def _field(rt: Runtime, caller: Caller) -> ImageField:
    return image_field(caller.chat_image_field, rt.settings.chat.image_field)


async def _answer(
    rt: Runtime, req: ChatRequest, target: Target, resolve: ImageResolver
) -> JSONObject | Answer:
    if target.channel.kind == "gemini":
        return await chat_gemini.answer(rt, req.body, req.model, target, resolve)
    return await rt.providers.for_channel(target.channel).chat(target, _upstream_body(req, target))


async def complete(
    rt: Runtime, caller: Caller, req: ChatRequest, *, request_id: str, endpoint: str
) -> JSONObject:
    ledger = await open_ledger(
        rt, caller, request_id=request_id, endpoint=endpoint, model=req.model, group=req.group,
        operation="chat", stream=False, body=req.body,
    )  # fmt: skip
    field = _field(rt, caller)
    resolve = rt.resolver.for_request()
    try:
        await ledger.reserve()
        result, target = await with_failover(
            rt, ledger.channels, ledger.record.attempts, lambda t: _answer(rt, req, t, resolve)
        )
        images = _settle(rt, ledger, req, target, field)
        if isinstance(result, Answer):
            body = await chat_gemini.completion(rt, ledger, req.model, result, field)
        else:
            body = result
            await _rehost_choices(images, body, "message", field)
            ledger.record.image_count = images.count
            usage = Usage.from_openai(body.get("usage"))
            if usage is not None:
                ledger.record.usage = usage
            body["model"] = req.model
    except BaseException as exc:
        ledger.close(exc)
        raise
    await ledger.done()
    return body


async def stream(
    rt: Runtime, caller: Caller, req: ChatRequest, *, request_id: str, endpoint: str
) -> AsyncGenerator[bytes, None]:
    """The SSE bytes of a streamed chat; refusals before routing raise here, at once.

    The generator opens the upstream stream (with failover) before its first chunk. A failure there
    raises a GatewayError out of it: the response layer answers it as a plain HTTP error when nothing
    was sent yet (keepalive comments commit the answer after one keepalive interval), else as an SSE
    error event.
    """
    ledger = await open_ledger(
        rt, caller, request_id=request_id, endpoint=endpoint, model=req.model, group=req.group,
        operation="chat", stream=True, body=req.body,
    )  # fmt: skip
    resolve = rt.resolver.for_request()

    async def open_one(target: Target) -> ChatStream | GeminiStream:
        if target.channel.kind == "gemini":
            return await chat_gemini.open_stream(rt, req.body, req.model, target, resolve)
        return await rt.providers.for_channel(target.channel).open_chat_stream(
            target, _upstream_body(req, target)
        )

    return _relay(
        rt,
        ledger,
        req,
        lambda: with_failover(rt, ledger.channels, ledger.record.attempts, open_one),
        _field(rt, caller),
    )


async def _relay(
    rt: Runtime,
    ledger: Ledger,
    req: ChatRequest,
    open_upstream: Callable[[], Awaitable[tuple[ChatStream | GeminiStream, Target]]],
    field: ImageField = "none",
) -> AsyncGenerator[bytes, None]:
    """Relay the events one upstream read at a time (one write to the client per read), then `[DONE]`."""
    upstream: ChatStream | GeminiStream | None = None
    try:
        await ledger.reserve()
        upstream, target = await open_upstream()
        images = _settle(rt, ledger, req, target, field)
        gemini = isinstance(upstream, GeminiStream)
        if isinstance(upstream, GeminiStream):
            events = chat_gemini.relay(rt, ledger, req.model, upstream, field, req.include_usage)
        else:
            events = _relay_openai(ledger, req, upstream, target, images, field)  # ends with DONE
        async with contextlib.aclosing(events):
            async for out in events:
                yield out
        if gemini:
            yield DONE
        await ledger.done()
    except GatewayError as exc:
        ledger.close(exc)
        raise
    finally:
        if upstream is not None:
            await upstream.aclose()
        ledger.close(asyncio.CancelledError())


async def _relay_openai(
    ledger: Ledger,
    req: ChatRequest,
    upstream: ChatStream,
    target: Target,
    images: ChatImages,
    field: ImageField,
) -> AsyncGenerator[bytes, None]:
    """An OpenAI-shaped stream. It is complete once the upstream sent `[DONE]` or a `finish_reason`; one
    that stops before both ends with an `upstream_stream_interrupted` error event and no `[DONE]`, so the
    client cannot take a cut answer for a whole one."""
    model_bytes: dict[str, bytes] = {}
    finished = done = False
    outs: list[bytes] = []

    async def relay(datas: list[bytes]) -> bool:
        """Events one by one; False at `[DONE]`, which goes out in the same write as the last events."""
        nonlocal finished
        for data in datas:
            if data == b"[DONE]":
                outs.append(DONE)
                return False
            if not finished:
                finished = _has_finish_reason(data)
            if b"![" in data or b'"images"' in data:
                data = await _rehost_chunk(data, ledger, images, field)
            out = _rewrite_chunk(data, ledger, req, model_bytes)
            if out is not None:
                outs.append(out)
        return True

    async for batch in upstream.batches():
        if done:  # the stream reads its body to the end, so that its connection is kept: nothing to relay
            continue
        raw, count = _framed(batch)
        if count > _PLAIN_RUN_MIN:  # a burst: its middle passed on by a few searches over it all
            alive = True
            if not model_bytes:  # the first event tells how the upstream spells its model's name
                first = raw.index(b"\n\n")
                alive = await relay([raw[6:first]])
                raw, count = raw[first + 2 :], count - 1
            if alive:
                tail = raw.rfind(b"\n\ndata: ", 0, raw.rfind(b"\n\ndata: ")) + 2  # usage, `[DONE]`
                block = _plain_block(raw[:tail], count - 2, req, model_bytes) if model_bytes else None
                if block is not None:
                    outs.append(block)
                    finished = finished or _has_finish_reason(block)
                    raw = raw[tail:]
                alive = await relay(plain_datas(raw))
        else:
            alive = await relay([data for _, data in batch])
        done = not alive
        if outs:
            ledger.ttfb()
            yield outs[0] if len(outs) == 1 else b"".join(outs)
            outs.clear()
    if not (done or finished):
        raise UpstreamStreamInterrupted(
            f"channel {target.channel.name}: the upstream's stream stopped before its end"
        )
    if not done:
        yield DONE


_PLAIN_RUN_MIN = 5  # events in a read before a search over them all pays off


def _framed(batch: list[SSEEvent] | PlainRun) -> tuple[bytes, int]:
    """The batch's events as `data: …` lines each followed by a blank line, and how many; (b"", 0) when
    they cannot be (an event's data spans lines) or are too few to be worth it."""
    if isinstance(batch, PlainRun):
        return batch.raw, batch.n
    if len(batch) <= _PLAIN_RUN_MIN:
        return b"", 0
    raw = b"data: " + b"\n\ndata: ".join(data for _, data in batch) + b"\n\n"
    return (raw, len(batch)) if raw.count(b"\n") == 2 * len(batch) else (b"", 0)


def _plain_block(block: bytes, count: int, req: ChatRequest, model_bytes: dict[str, bytes]) -> bytes | None:
    """`block` (`count` events framed `data: …` and a blank line) with the client's model name, from one
    search over them all instead of a few per event (an upstream's burst: 20 events in one read). None
    when one of them needs more: usage, images, `[DONE]`, a model name spelt otherwise; those go event by
    event."""
    if not req.include_usage and b'"usage"' in block:
        block = b"".join(block.split(b',"usage":null'))  # one search; `replace` makes two
    if b'"usage"' in block or _markdown_image(block) or b'"images"' in block:
        return None
    old, new = model_bytes["old"], model_bytes["new"]
    parts = block.split(old)
    if len(parts) != count + 1:  # also when one of them is `[DONE]`
        return None
    return block if old == new else new.join(parts)


def _markdown_image(data: bytes) -> bool:
    """Whether `![` occurs: a search for `!` (rare, and found at memory speed) and a look at what follows,
    instead of a two-byte search, which tests nearly every byte."""
    at = data.find(b"!")
    while at >= 0:
        if data[at + 1 : at + 2] == b"[":
            return True
        at = data.find(b"!", at + 1)
    return False


def _has_finish_reason(data: bytes) -> bool:
    """A bytes search, not a parse: `"finish_reason":null` does not count, `"finish_reason":"stop"` does."""
    return b'"finish_reason":"' in data or b'"finish_reason": "' in data


async def _rehost_chunk(data: bytes, ledger: Ledger, images: ChatImages, field: ImageField = "none") -> bytes:
    """A chunk that carries images: re-host them (rare, so a second parse costs nothing overall)."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data
    if not isinstance(chunk, dict):
        return data
    await _rehost_choices(images, chunk, "delta", field, lead="\n\n")
    ledger.record.image_count = images.count
    return orjson.dumps(chunk)


def _rewrite_chunk(
    data: bytes, ledger: Ledger, req: ChatRequest, model_bytes: dict[str, bytes] | None = None
) -> bytes | None:
    """Give the chunk the client's model name; take usage for the record, strip it if not asked for.

    `model_bytes` remembers how the upstream spells its model, so later chunks without usage are
    rewritten by a bytes replace instead of a parse and a dump.
    """
    if model_bytes and model_bytes["old"] in data:
        fast = data
        if b'"usage"' in fast and not req.include_usage:
            fast = fast.replace(b',"usage":null', b"", 1)
        if b'"usage"' not in fast:
            return _event(fast.replace(model_bytes["old"], model_bytes["new"], 1))
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _event(data)
    if not isinstance(chunk, dict):
        return _event(data)
    if "usage" in chunk:
        usage = Usage.from_openai(chunk["usage"])
        if usage is not None:
            ledger.record.usage = usage
        if not req.include_usage:
            if not chunk.get("choices"):
                return None
            del chunk["usage"]
    if "model" in chunk:
        if model_bytes is not None and not model_bytes and isinstance(chunk["model"], str):
            _learn_model_bytes(data, chunk["model"], req.model, model_bytes)
        chunk["model"] = req.model
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _event(data: bytes) -> bytes:
    """The SSE event carrying `data`: a `data:` line per line of it."""
    if b"\n" in data:
        data = data.replace(b"\n", b"\ndata: ")
    return b"data: " + data + b"\n\n"


def _learn_model_bytes(data: bytes, upstream: str, client: str, model_bytes: dict[str, bytes]) -> None:
    value = orjson.dumps(upstream)
    for old in (b'"model":' + value, b'"model": ' + value):
        if data.count(old) == 1:
            model_bytes["old"], model_bytes["new"] = old, b'"model":' + orjson.dumps(client)
            return
