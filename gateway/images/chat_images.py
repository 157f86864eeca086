"""Images inside an OpenAI-compatible chat answer (§3.2): `data:` URLs in markdown or in `images[]` are
re-hosted and replaced by storage URLs; http(s) URLs are re-hosted only when the channel asks for it.

Without storage, or when an upload fails, the original URL stays: a chat client can always use it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from gateway.errors import GatewayError
from gateway.images.fetch import ImageFetcher
from gateway.images.rehost import store_image
from gateway.images.sniff import parse_data_url
from gateway.storage.base import ObjectStore

log = logging.getLogger("gateway.images")

# Each is linear on its own: a literal start, and no repetition followed by another that overlaps it.
_ANCHOR = re.compile(r"\]\(\s*(data:image/|https?://)")
_SPACES = re.compile(r"\s*")
_URL_STOP = re.compile(r"[)\s]")

Rehost = Callable[[str], Awaitable[str]]


class ChatImages:
    """Re-hosts the images of one answer; counts them for the usage record."""

    def __init__(
        self, store: ObjectStore | None, fetcher: ImageFetcher, upload_attempts: int, rehost_urls: bool
    ) -> None:
        self._store, self._fetcher = store, fetcher
        self._attempts, self._rehost_urls = upload_attempts, rehost_urls
        self.count = 0

    @staticmethod
    def may_hold_images(message: dict[str, Any]) -> bool:
        content = message.get("content")
        return bool(message.get("images")) or (isinstance(content, str) and "![" in content)

    async def message(self, message: dict[str, Any]) -> None:
        """Rewrite a `message` (or a stream `delta`) in place."""
        images = message.get("images")
        if isinstance(images, list):
            for image in images:
                inner = image.get("image_url") if isinstance(image, dict) else None
                if isinstance(inner, dict) and isinstance(inner.get("url"), str):
                    inner["url"] = await self._rehost(inner["url"])
        content = message.get("content")
        if isinstance(content, str) and "![" in content:
            message["content"] = await self._content(content)

    async def _content(self, content: str) -> str:
        parts: list[str] = []
        last = 0
        for start, end, alt, url in markdown_images(content):
            parts.append(content[last:start])
            parts.append(f"![{alt}]({await self._rehost(url)})")
            last = end
        parts.append(content[last:])
        return "".join(parts)

    async def _rehost(self, url: str) -> str:
        self.count += 1
        is_data = url[:5].lower() == "data:"
        if self._store is None or not (is_data or self._rehost_urls):
            return url
        try:
            data = parse_data_url(url, "image") if is_data else (await self._fetcher.fetch(url, "image")).data
            return (await store_image(self._store, data, self._attempts)).url
        except GatewayError as exc:
            log.error("could not re-host a chat image, passing it through: %s", exc.message)
            return url


def markdown_images(text: str) -> Iterator[tuple[int, int, str, str]]:
    r"""`(start, end, alt, url)` of each `![alt](url)` whose URL is `data:image/…` or http(s).

    The same spans as the pattern `!\[([^\]]*)\]\(\s*((?:data:image/|https?://)[^)\s]+)\s*\)` finds,
    but in linear time: that pattern rescans to the end of the text from every unclosed `![` or
    `![a](https://`, which is quadratic. Here the scan moves from one `](<scheme>` to the next, and
    no character is looked at more than a few times, because
    - the image that ends its alt text at a `]` starts at the first `![` after the `]` before it,
      so looking for it goes back no further than that `]`;
    - a URL that starts inside a URL already scanned ends where that one ended: when that one was
      not followed by `)`, neither is this one, and the scan jumps to the end of it.
    """
    pos = last_end = 0
    while anchor := _ANCHOR.search(text, pos):
        close, url_start = anchor.start(), anchor.start(1)
        before = text.rfind("]", last_end, close)
        start = text.find("![", max(before + 1, last_end), close)
        if start < 0:
            pos = close + 1
            continue
        stop = _URL_STOP.search(text, anchor.end())
        url_end = stop.start() if stop else len(text)
        end = _skip_spaces(text, url_end)
        if url_end == anchor.end() or not text.startswith(")", end):
            pos = max(close + 1, url_end - 2)  # a later `](` can only start a new URL from here on
            continue
        yield start, end + 1, text[start + 2 : close], text[url_start:url_end]
        pos = last_end = end + 1


def _skip_spaces(text: str, pos: int) -> int:
    spaces = _SPACES.match(text, pos)
    return spaces.end() if spaces else pos
