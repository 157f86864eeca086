"""Chat messages → Gemini `contents` and `systemInstruction` (§3.4).

System (and developer) messages become `systemInstruction`; user turns keep the role `user`, assistant
turns become `model`. Image parts become `inlineData` through the injected resolver, images before the
text of the same message. Markdown images in earlier assistant answers (`![image](URL)`, and the
`images[]` list OpenRouter-style clients echo back) become `inlineData` of that `model` turn, in the
order they appeared, with the `thoughtSignature` the resolver kept for the image. Consecutive messages
of one role are merged: Gemini expects the roles to alternate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pybase64

from gateway.domain import ImageResolver, InputImage, JSONObject
from gateway.errors import InvalidRequest

_IMAGE_URL_STARTS = ("data:image/", "http://", "https://")


def inline_part(image: InputImage, *, signed: bool) -> JSONObject:
    """An `inlineData` part; the thought signature only goes back on the model's own turns."""
    part: JSONObject = {
        "inlineData": {"mimeType": image.mime, "data": pybase64.b64encode_as_string(image.data)}
    }
    if signed and image.thought_signature:
        part["thoughtSignature"] = image.thought_signature
    return part


@dataclass
class Conversation:
    system: list[JSONObject] = field(default_factory=list)
    contents: list[JSONObject] = field(default_factory=list)

    def add(self, role: str, parts: list[JSONObject]) -> None:
        if not parts:
            return
        if self.contents and self.contents[-1]["role"] == role:
            self.contents[-1]["parts"].extend(parts)
        else:
            self.contents.append({"role": role, "parts": parts})


async def conversation(messages: list[Any], resolve: ImageResolver) -> Conversation:
    conv = Conversation()
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            conv.system.extend({"text": text} for text in _texts(content, f"messages[{i}].content"))
        elif role == "user":
            conv.add("user", await _user_parts(content, i, resolve))
        elif role == "assistant":
            conv.add("model", await _model_parts(message, i, resolve))
        else:
            raise InvalidRequest(
                f"messages[{i}].role {role!r} is not supported for this model; use system, user or assistant",
                param=f"messages[{i}].role",
            )
    if not conv.contents:
        raise InvalidRequest("messages must hold at least one user message with content", param="messages")
    return conv


def _texts(content: Any, param: str) -> list[str]:
    """The text of a system message; it may not carry images."""
    if content is None or isinstance(content, str):
        return [content] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{param} must be a string or a list of parts", param=param)
    texts = []
    for n, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text":
            raise InvalidRequest(f"{param}[{n}] must be a text part", param=f"{param}[{n}]")
        if part.get("text"):
            texts.append(str(part["text"]))
    return texts


def _image_url(part: dict[str, Any], param: str) -> str:
    inner = part.get("image_url")
    url = inner.get("url") if isinstance(inner, dict) else inner
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{param}.image_url.url must be an image URL", param=f"{param}.image_url")
    return url


async def _user_parts(content: Any, i: int, resolve: ImageResolver) -> list[JSONObject]:
    param = f"messages[{i}].content"
    if content is None or isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{param} must be a string or a list of parts", param=param)
    images: list[JSONObject] = []
    texts: list[JSONObject] = []
    for n, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                texts.append({"text": str(part["text"])})
        elif kind == "image_url":
            what = f"{param}[{n}].image_url"
            image = await resolve(_image_url(part, f"{param}[{n}]"), what)
            images.append(inline_part(image, signed=False))
        else:
            raise InvalidRequest(
                f"{param}[{n}] has type {kind!r}; this model takes text and image_url parts",
                param=f"{param}[{n}].type",
            )
    return images + texts


async def _model_parts(message: dict[str, Any], i: int, resolve: ImageResolver) -> list[JSONObject]:
    """An earlier answer: its text, and its images back as `inlineData`, in the order they appeared."""
    param = f"messages[{i}].content"
    pieces: list[tuple[str, str]] = []  # ("text", text) or ("image", url)
    content = message.get("content")
    if isinstance(content, str):
        pieces += _split_markdown(content)
    elif isinstance(content, list):
        for n, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                pieces += _split_markdown(part["text"])
            elif kind == "image_url":
                pieces.append(("image", _image_url(part, f"{param}[{n}]")))
    elif content is not None:
        raise InvalidRequest(f"{param} must be a string or a list of parts", param=param)
    seen = {value for kind, value in pieces if kind == "image"}
    for url in _listed_images(message.get("images")):
        if url not in seen:
            seen.add(url)
            pieces.append(("image", url))
    parts: list[JSONObject] = []
    for kind, value in pieces:
        if kind == "text":
            parts.append({"text": value})
        else:
            image = await resolve(value, f"{param} image {value[:64]!r}")
            parts.append(inline_part(image, signed=True))
    return parts


def _listed_images(images: Any) -> Iterator[str]:
    for item in images if isinstance(images, list) else ():
        inner = item.get("image_url") if isinstance(item, dict) else None
        url = inner.get("url") if isinstance(inner, dict) else None
        if isinstance(url, str) and url.startswith(_IMAGE_URL_STARTS):
            yield url


def _split_markdown(text: str) -> list[tuple[str, str]]:
    """Text and markdown image URLs in order; blank text between images is dropped."""
    pieces: list[tuple[str, str]] = []
    last = 0
    for start, end, url in markdown_images(text):
        if text[last:start].strip():
            pieces.append(("text", text[last:start].strip()))
        pieces.append(("image", url))
        last = end
    if text[last:].strip():
        pieces.append(("text", text[last:].strip()))
    return pieces


def markdown_images(text: str) -> list[tuple[int, int, str]]:
    """(start, end, url) of each `![alt](url)` whose url is http(s) or a `data:image/` URL.

    A scan with `str.find` rather than a regular expression: every position is looked at a bounded
    number of times, so a long or hostile text costs linear time.
    """
    found: list[tuple[int, int, str]] = []
    pos = 0
    while (start := text.find("![", pos)) >= 0:
        close = text.find("](", start + 2)
        if close < 0:
            break
        end = text.find(")", close + 2)
        if end < 0:
            break
        url = text[close + 2 : end].strip()
        if url.startswith(_IMAGE_URL_STARTS) and not any(c.isspace() for c in url):
            found.append((start, end + 1, url))
            pos = end + 1
        else:
            # Every `![` before `close` would find the same `](` and `)`: skip them all at once.
            pos = close + 2
    return found
