"""What an OpenAI-compatible answer must hold to be one (§2), and reading a large Images API answer with
as few copies as possible (§5.4).

A 16 MB image is 21 MB of base64 inside the JSON. Parsing the whole document would hold the raw body,
the parser's copy and the decoded string at once. Instead each `"b64_json": "…"` value is decoded
straight from the body buffer, and only the small rest of the document goes through the JSON parser.
"""

from __future__ import annotations

import binascii
import re
from typing import Any

import orjson

from gateway.domain import DecodedImage, JSONObject

_B64_KEY = re.compile(rb'"b64_json"\s*:\s*"')


def split_images(raw: bytes | bytearray) -> tuple[bytes, list[bytes]] | None:
    """The document with each `b64_json` value replaced by its index, and the decoded images.

    None when a value holds a JSON escape or is not clean base64: then the caller parses as usual.
    """
    parts: list[bytes] = []
    images: list[bytes] = []
    view = memoryview(raw)
    pos = 0
    while (match := _B64_KEY.search(raw, pos)) is not None:
        start = match.end()
        end = raw.find(b'"', start)
        if end < 0 or raw.find(b"\\", start, end) >= 0:
            return None
        try:
            images.append(binascii.a2b_base64(view[start:end], strict_mode=True))
        except binascii.Error:
            return None
        parts += (bytes(view[pos:start]), str(len(images) - 1).encode())
        pos = end
    if not images:
        return None
    parts.append(bytes(view[pos:]))
    view.release()
    return b"".join(parts), images


def parse_images_answer(raw: bytes | bytearray) -> Any:
    """Parse an Images API answer; base64 images come back as DecodedImage when they could be split out."""
    split = split_images(raw)
    if split is None:
        return orjson.loads(raw)
    rest, images = split
    answer = orjson.loads(rest)
    data = answer.get("data") if isinstance(answer, dict) else None
    for item in data if isinstance(data, list) else ():
        index = item.get("b64_json") if isinstance(item, dict) else None
        # isdecimal() on ASCII only: "²".isdigit() is true, and int("²") raises.
        if isinstance(index, str) and index.isascii() and index.isdecimal() and int(index) < len(images):
            item["b64_json"] = DecodedImage(images[int(index)])
    return answer


def chat_problem(answer: JSONObject) -> str | None:
    """Why a chat completion is no answer, or None: it needs `choices`, each with a `message` object."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices:
        return "has no choices"
    for choice in choices:
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            return "has a choice without a message object"
    return None


def images_problem(answer: JSONObject) -> str | None:
    """Why an Images API answer is no answer, or None: `data` items must each hold an image or a URL."""
    data = answer.get("data")
    if not isinstance(data, list) or not data:
        return "has no data"
    for item in data:
        if not isinstance(item, dict):
            return "has a data item that is not an object"
        image, url = item.get("b64_json"), item.get("url")
        if not (isinstance(image, DecodedImage) or _text(image) or _text(url)):
            return "has a data item with neither b64_json nor url"
    return None


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)
