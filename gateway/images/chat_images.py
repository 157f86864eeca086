"""Images inside a chat answer (§3.2): `data:` URLs in markdown or in `images[]` are re-hosted and replaced
by storage URLs; http(s) URLs are re-hosted only when the channel asks for it.

An answer that carries one image twice (in the markdown of `content` and in `images[]`, as
OpenRouter-shaped answers do, or again in a later stream delta) has one image: it is stored once and
counted once. Without storage, or when an upload fails, the original URL stays: a chat client can always
use it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from gateway.errors import GatewayError
from gateway.images.chat_shape import ShownImage
from gateway.images.fetch import ImageFetcher
from gateway.images.rehost import store_image
from gateway.images.sniff import parse_data_url
from gateway.storage.base import ObjectStore

log = logging.getLogger("gateway.images")

# Each is linear on its own: a literal start, and no repetition followed by another that overlaps it.
_ANCHOR = re.compile(r"\]\(\s*(data:image/|https?://)")
_SPACES = re.compile(r"\s*")
_URL_STOP = re.compile(r"[)\s]")
_SHORT_URL = 2048  # longer URLs (data: URLs) are remembered by a digest, not by their text


def _identity(url: str) -> str | bytes:
    return url if len(url) <= _SHORT_URL else hashlib.sha256(url.encode()).digest()


class ChatImages:
    """Re-hosts the images of one answer (every delta of a stream); counts them for the usage record.

    `keep_data`: remember each image's bytes (downloading an upstream URL that is passed through), for
    the `message.image` list of `chat_image_field: list_data`.
    """

    def __init__(
        self,
        store: ObjectStore | None,
        fetcher: ImageFetcher,
        upload_attempts: int,
        rehost_urls: bool,
        keep_data: bool = False,
    ) -> None:
        self._store, self._fetcher = store, fetcher
        self._attempts, self._rehost_urls, self._keep_data = upload_attempts, rehost_urls, keep_data
        self._seen: dict[str | bytes, ShownImage] = {}
        self.shown: list[ShownImage] = []  # every image of the answer, in the order it first appeared

    @property
    def count(self) -> int:
        return len(self.shown)

    @staticmethod
    def may_hold_images(message: dict[str, Any]) -> bool:
        content = message.get("content")
        return bool(message.get("images")) or (isinstance(content, str) and "![" in content)

    async def message(self, message: dict[str, Any]) -> list[ShownImage]:
        """Rewrite a `message` (or a stream `delta`) in place; returns the images it showed first."""
        first: list[ShownImage] = []
        content = message.get("content")
        if isinstance(content, str) and "![" in content:
            message["content"] = await self._content(content, first)
        images = message.get("images")
        if isinstance(images, list):
            for image in images:
                inner = image.get("image_url") if isinstance(image, dict) else None
                if isinstance(inner, dict) and isinstance(inner.get("url"), str):
                    inner["url"] = (await self._show(inner["url"], first)).url
        return first

    async def _content(self, content: str, first: list[ShownImage]) -> str:
        parts: list[str] = []
        last = 0
        for start, end, alt, url in markdown_images(content):
            parts.append(content[last:start])
            parts.append(f"![{alt}]({(await self._show(url, first)).url})")
            last = end
        parts.append(content[last:])
        return "".join(parts)

    async def _show(self, url: str, first: list[ShownImage]) -> ShownImage:
        identity = _identity(url)
        shown = self._seen.get(identity)
        if shown is None:
            shown = self._seen[identity] = await self._rehost(url)
            self.shown.append(shown)
            first.append(shown)
        return shown

    async def _rehost(self, url: str) -> ShownImage:
        is_data = url[:5].lower() == "data:"
        store = self._store
        rehost = store is not None and (is_data or self._rehost_urls)
        if not rehost and (is_data or not self._keep_data):
            return ShownImage(url)  # a data: URL shown as is still holds its bytes
        try:
            data = parse_data_url(url, "image") if is_data else (await self._fetcher.fetch(url, "image")).data
            if store is None or not rehost:
                return ShownImage(url, data)
            stored = await store_image(store, data, self._attempts)
        except GatewayError as exc:
            log.error("could not re-host a chat image, passing it through: %s", exc.message)
            return ShownImage(url)
        return ShownImage(stored.url, data if self._keep_data else None)


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
