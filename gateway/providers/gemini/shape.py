"""Typed Gemini answers → the OpenAI shapes clients read: chat completions (§3.2), chunks (§3.3) and
Images API answers (§4.2).

Image URLs are given by the caller: storage URLs once the images are stored, or `data:` URLs.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

import orjson
import pybase64

from gateway.domain import Base64Image, JSONObject, UpstreamImage
from gateway.providers.gemini.response import Answer
from gateway.providers.gemini.stream import (
    Delta,
    FinishDelta,
    ImageDelta,
    ReasoningDelta,
    TextDelta,
    UsageDelta,
)

_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp", "image/gif": "gif"}


def data_url(image: UpstreamImage) -> str:
    return f"data:{image.mime or 'image/png'};base64,{pybase64.b64encode_as_string(image.data)}"


def base64_of(image: UpstreamImage) -> Base64Image | str:
    """The image as the `b64_json` value of an answer: its own base64 text when it was kept."""
    return image if isinstance(image, Base64Image) else pybase64.b64encode_as_string(image.data)


def markdown(urls: Sequence[str]) -> str:
    return "\n\n".join(f"![image]({url})" for url in urls)


def image_entries(urls: Sequence[str]) -> list[JSONObject]:
    """The OpenRouter-style `images` list."""
    return [{"type": "image_url", "image_url": {"url": url}} for url in urls]


def completion_id(response_id: str | None) -> str:
    return f"chatcmpl-{response_id or secrets.token_hex(12)}"


def chat_completion(answer: Answer, *, model: str, image_urls: Sequence[str]) -> JSONObject:
    """§3.2: text, then the images as markdown; `images[]`; reasoning and refusal when there are some."""
    content = "\n\n".join(piece for piece in (answer.text, markdown(image_urls)) if piece)
    message: JSONObject = {"role": "assistant", "content": content or None}
    if image_urls:
        message["images"] = image_entries(image_urls)
    if answer.reasoning:
        message["reasoning_content"] = answer.reasoning
    if answer.refusal:
        message["refusal"] = answer.refusal
    return {
        "id": completion_id(answer.response_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": answer.finish_reason}],
        "usage": answer.usage.chat_usage(),
    }


class ChunkWriter:
    """`chat.completion.chunk`s for the deltas of one stream, in order."""

    def __init__(self, model: str, response_id: str | None = None) -> None:
        self._base: JSONObject = {
            "id": completion_id(response_id),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        self._started = False
        self._wrote_text = False

    def _choice(self, delta: JSONObject, finish: str | None = None) -> bytes:
        if not self._started:
            delta = {"role": "assistant", **delta}
            self._started = True
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return orjson.dumps({**self._base, "choices": [choice]})

    @property
    def wrote_text(self) -> bool:
        """Content went out already: markdown that follows starts on a new paragraph."""
        return self._wrote_text

    def delta(self, delta: JSONObject) -> bytes:
        """A chunk carrying `delta` as given (an image delta the pipeline shaped, §3.3)."""
        if delta.get("content"):
            self._wrote_text = True
        return self._choice(delta)

    def chunk(self, delta: Delta, image_url: str | None = None) -> bytes:
        """One chunk; an image delta needs the URL it is shown at."""
        if isinstance(delta, TextDelta):
            self._wrote_text = True
            return self._choice({"content": delta.text})
        if isinstance(delta, ReasoningDelta):
            return self._choice({"reasoning_content": delta.text})
        if isinstance(delta, ImageDelta):
            url = image_url or data_url(delta.image)
            prefix = "\n\n" if self._wrote_text else ""
            self._wrote_text = True
            return self._choice({"content": prefix + markdown([url]), "images": image_entries([url])})
        if isinstance(delta, FinishDelta):
            return self._choice({"refusal": delta.refusal} if delta.refusal else {}, delta.reason)
        assert isinstance(delta, UsageDelta)
        return orjson.dumps({**self._base, "choices": [], "usage": delta.usage.chat_usage()})


def images_answer(answers: Sequence[Answer], *, decoded: bool) -> JSONObject:
    """§4.2: one `data` entry per image delivered, in call order; text parts → `revised_prompt`.

    `decoded`: the images will be stored, so they stay `DecodedImage` (no base64 text is made). Else
    each is base64: the text that came when it was kept (`Base64Image`), encoded once otherwise.
    """
    data: list[JSONObject] = []
    usage = None
    for answer in answers:
        usage = answer.usage if usage is None else usage + answer.usage
        for image in answer.images:
            item: JSONObject = {"b64_json": image if decoded else base64_of(image)}
            if answer.text.strip():
                item["revised_prompt"] = answer.text.strip()
            data.append(item)
    body: JSONObject = {"created": int(time.time()), "data": data}
    formats = {_FORMATS.get(image.mime or "") for answer in answers for image in answer.images}
    if len(formats) == 1 and None not in formats:
        body["output_format"] = formats.pop()
    if usage is not None:
        body["usage"] = usage.images_usage()
    return body
