"""Deliver the images of an Images API answer in the format the client wants (§4.3, §5.2).

- base64 wanted as a URL: decoded once, stored, replaced by the storage URL;
- a URL wanted as base64: downloaded and inlined;
- a URL re-hosted when the operator asks for it (`storage.rehost: always`, channel `rehost_urls`).
When storage fails and the client allowed base64, the base64 is kept and a warning is returned.
"""

from __future__ import annotations

import binascii
import logging
from dataclasses import dataclass
from typing import Any, Literal

import pybase64

from gateway.domain import Base64Image, UpstreamImage
from gateway.errors import GatewayError, ImageURLNotAvailable, StorageUnavailable, UpstreamError
from gateway.images.fetch import ImageFetcher
from gateway.images.rehost import check_image, store_image
from gateway.images.sniff import decode_base64_image
from gateway.storage.base import ObjectStore

log = logging.getLogger("gateway.images")

Format = Literal["url", "b64_json"]
STORAGE_WARNING = "storage_unavailable: images returned as base64"
NO_STORAGE_WARNING = "image_url_not_available: no object storage is set up; images returned as base64"
_HEAD_CHARS = 4096  # base64 decoded to sniff an image that passes through: 3 KB of it


@dataclass(frozen=True)
class Delivery:
    wanted: Format | None  # None: as the upstream answered
    store: ObjectStore | None
    fetcher: ImageFetcher
    upload_attempts: int
    rehost_urls: bool  # re-host upstream URLs too
    base64_allowed: bool  # the client did not insist on URLs: fall back to base64 if storage fails


async def deliver(items: list[Any], how: Delivery) -> list[str]:
    """Rewrite `items` (the answer's `data` list) in place; returns warnings for the client."""
    warnings: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        url = item.get("url")
        if isinstance(url, str) and url[:5].lower() == "data:":
            _data_url_to_b64(item, url)  # base64 never travels as a URL
        b64 = item.get("b64_json")
        if isinstance(b64, UpstreamImage) or (isinstance(b64, str) and b64):  # an empty image is sniffed
            if how.wanted == "url" and not await _b64_to_url(item, how):
                warnings.append(STORAGE_WARNING if how.store is not None else NO_STORAGE_WARNING)
            if isinstance(item.get("b64_json"), Base64Image | str):
                _check_passed(item["b64_json"])
        elif isinstance(item.get("url"), str) and item["url"]:
            if how.wanted == "b64_json":
                data = await _download(how.fetcher, item["url"])
                item.pop("url")
                item["b64_json"] = pybase64.b64encode_as_string(data)
            elif how.rehost_urls and how.store is not None:
                await _rehost_url(item, how)
    return list(dict.fromkeys(warnings))


def _data_url_to_b64(item: dict[str, Any], url: str) -> None:
    header, comma, payload = url.partition(",")
    if not comma or ";base64" not in header.lower():
        raise UpstreamError("the upstream returned an image data URL that is not base64")
    del item["url"]
    item["b64_json"] = payload


async def _b64_to_url(item: dict[str, Any], how: Delivery) -> bool:
    """Store the image and put its URL in place of the base64; False if it fell back to base64."""
    if how.store is None:
        if how.base64_allowed:
            return False
        raise ImageURLNotAvailable(
            "response_format=url was asked; the upstream answered base64 and no object storage is set up.",
            param="response_format",
        )
    try:
        # Popped so the base64 text is freed before the upload: one copy of the image at a time.
        b64 = item.pop("b64_json")
        data = b64.data if isinstance(b64, UpstreamImage) else decode_base64_image(b64, "upstream image")
    except GatewayError as exc:
        raise UpstreamError(
            f"the upstream returned an image that is not valid base64 ({exc.message})"
        ) from None
    kept = b64 if isinstance(b64, Base64Image) else None  # the same base64 again, should storage fail
    del b64
    try:
        stored = await store_image(how.store, data, how.upload_attempts)
    except StorageUnavailable:
        if how.base64_allowed:
            log.error("storage failed; returning the image as base64 instead of a URL")
            item["b64_json"] = kept if kept is not None else pybase64.b64encode_as_string(data)
            return False
        raise
    item["url"] = stored.url
    return True


def _check_passed(image: Base64Image | str) -> None:
    """Base64 that goes back to the client is still an image (§5.2): its first bytes are sniffed."""
    try:
        if isinstance(image, Base64Image):
            head = image.head(_HEAD_CHARS)
        else:  # a value that could not be split out of the answer: parsed, tolerated as the client would
            head = decode_base64_image(image[:_HEAD_CHARS], "upstream image")
    except (binascii.Error, GatewayError):
        head = b""
    check_image(head, "upstream")


async def _download(fetcher: ImageFetcher, url: str) -> bytes:
    try:
        return (await fetcher.fetch(url, "upstream image URL")).data
    except GatewayError as exc:
        raise UpstreamError(f"could not download the image the upstream returned: {exc.message}") from None


async def _rehost_url(item: dict[str, Any], how: Delivery) -> None:
    assert how.store is not None
    data = await _download(how.fetcher, item["url"])
    try:
        stored = await store_image(how.store, data, how.upload_attempts)
    except StorageUnavailable:
        log.error("storage failed; passing the upstream image URL through")
        return
    item["url"] = stored.url
