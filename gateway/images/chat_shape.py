"""How a chat answer shows its images (§3.2, §3.3), for every kind of upstream in one place.

Each image appears as markdown in `content` (`![image](<URL>)`) and as an OpenRouter-style `images[]`
entry; what an answer lacks of the two is added. `chat_image_field` adds the compatibility field
`image`: `list_data` → `[{"data": "<base64>"}, …]` (seed 000), `object_url` → `{"url": "<first URL>"}`
(seed 003), `none` → nothing. The same function shapes a whole `message` and a stream `delta`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pybase64

ImageField = Literal["none", "list_data", "object_url"]
IMAGE_FIELDS: tuple[ImageField, ...] = ("none", "list_data", "object_url")


@dataclass(frozen=True, slots=True)
class ShownImage:
    """An image as the client gets it: its URL (storage, upstream, or a `data:` URL when there is no
    storage), and its bytes when the gateway has them (for `list_data`)."""

    url: str
    data: bytes | None = None

    def base64(self) -> str | None:
        if self.data is not None:
            return pybase64.b64encode_as_string(self.data)
        if self.url[:5].lower() == "data:":
            header, comma, payload = self.url.partition(",")
            if comma and ";base64" in header.lower():
                return payload
        return None


def image_field(token_choice: str | None, default: str) -> ImageField:
    """The token's own choice, else the global `chat.image_field`."""
    for choice in (token_choice, default):
        for known in IMAGE_FIELDS:
            if choice == known:
                return known
    return "none"


def markdown(url: str) -> str:
    return f"![image]({url})"


def entry(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def show(message: dict[str, Any], images: Sequence[ShownImage], field: ImageField, *, lead: str = "") -> None:
    """Shape `message` (or a `delta`) in place for `images`, the images it shows first.

    `lead` goes before markdown that starts an empty content: a stream delta after text gets `\\n\\n`.
    """
    if not images:
        return
    content = message.get("content")
    if content is None or isinstance(content, str):
        text = content or ""
        missing = [markdown(i.url) for i in images if f"({i.url})" not in text]
        if missing:
            pieces = [text] if text else []
            message["content"] = (lead if not text else "") + "\n\n".join(pieces + missing)
    listed = message.get("images")
    entries = listed if isinstance(listed, list) else []
    urls = {_entry_url(e) for e in entries}
    entries.extend(entry(i.url) for i in images if i.url not in urls)
    message["images"] = entries
    if field == "list_data":
        message["image"] = [{"data": b64} for i in images if (b64 := i.base64()) is not None]
    elif field == "object_url":
        message["image"] = {"url": images[0].url}


def _entry_url(item: Any) -> str | None:
    inner = item.get("image_url") if isinstance(item, dict) else None
    url = inner.get("url") if isinstance(inner, dict) else None
    return url if isinstance(url, str) else None
