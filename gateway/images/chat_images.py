"""Images inside an OpenAI-compatible chat answer (§3.2): `data:` URLs in markdown or in `images[]` are
re-hosted and replaced by storage URLs; http(s) URLs are re-hosted only when the channel asks for it.

Without storage, or when an upload fails, the original URL stays: a chat client can always use it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.errors import GatewayError
from gateway.images.fetch import ImageFetcher
from gateway.images.rehost import store_image
from gateway.images.sniff import parse_data_url
from gateway.storage.base import ObjectStore

log = logging.getLogger("gateway.images")

_MARKDOWN_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*((?:data:image/|https?://)[^)\s]+)\s*\)")

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
        for match in _MARKDOWN_IMAGE.finditer(content):
            parts.append(content[last : match.start()])
            parts.append(f"![{match.group(1)}]({await self._rehost(match.group(2))})")
            last = match.end()
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
