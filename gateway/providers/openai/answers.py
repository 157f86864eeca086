"""What an OpenAI-compatible answer must hold to be one (§2), and reading a large Images API answer with
as few copies as possible (§5.4).

Each `"b64_json": "…"` value is taken straight from the body buffer (see providers/inline_images.py):
decoded when it will be stored, else kept as its base64 text, checked, to go back to the client as it
came. Only the small rest of the document goes through the JSON parser.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.domain import Base64Image, DecodedImage, JSONObject, UpstreamImage
from gateway.providers.inline_images import index_of, split_base64, split_base64_text


def split_images(
    raw: bytes | bytearray, *, keep_base64: bool = False
) -> tuple[bytes, list[bytes]] | tuple[bytes, list[memoryview]] | None:
    """The document with each `b64_json` value replaced by its index, and the images: decoded, or
    (`keep_base64`) their checked base64 text.

    None when a value holds a JSON escape or is not clean base64: then the caller parses as usual.
    """
    if keep_base64:
        return split_base64_text(raw, b"b64_json")
    return split_base64(raw, b"b64_json")


def parse_images_answer(raw: bytes | bytearray, *, keep_base64: bool = False) -> Any:
    """Parse an Images API answer; base64 images that could be split out come back as DecodedImage, or
    with `keep_base64` as Base64Image (the text as it came, never decoded)."""
    split = split_images(raw, keep_base64=keep_base64)
    if split is None:
        return orjson.loads(raw)
    rest, images = split
    answer = orjson.loads(rest)
    data = answer.get("data") if isinstance(answer, dict) else None
    found = 0
    for item in data if isinstance(data, list) else ():
        index = index_of(item.get("b64_json"), len(images)) if isinstance(item, dict) else None
        if index is not None:
            image = images[index]
            item["b64_json"] = Base64Image(image) if isinstance(image, memoryview) else DecodedImage(image)
            found += 1
    if found != len(images):  # a `b64_json` key somewhere else: read the document as it is
        return orjson.loads(raw)
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
        if not (isinstance(image, UpstreamImage) or _text(image) or _text(url)):
            return "has a data item with neither b64_json nor url"
    return None


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)
