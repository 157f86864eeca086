"""Re-host an image in object storage: typed and named by its magic bytes, uploaded with retries (§5.2).

After the last failed attempt `StorageUnavailable` is raised; the caller decides whether to fall back
to base64 (never silently dropping an image the client paid for).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gateway import metrics
from gateway.errors import InvalidImage, StorageUnavailable, UpstreamError
from gateway.images.sniff import ImageInfo, sniff
from gateway.storage.base import ObjectStore, make_key

log = logging.getLogger(__name__)

Origin = Literal["upstream", "client"]
Sleep = Callable[[float], Awaitable[object]]
BACKOFF_SECONDS = 0.2
NOT_AN_IMAGE = "is not a PNG, JPEG, WEBP or GIF image"


@dataclass(frozen=True)
class StoredImage:
    url: str
    key: str
    info: ImageInfo
    size: int


def check_image(data: bytes, origin: Origin, what: str = "image") -> ImageInfo:
    """Sniff `data`, refusing anything that is not an image.

    Bytes a client sent raise `InvalidImage` (400). Bytes an upstream produced raise `UpstreamError`
    with code `invalid_upstream_image` (502, retryable on another channel): the client did nothing wrong.
    """
    info = sniff(data)
    if info is not None:
        return info
    if origin == "client":
        raise InvalidImage(f"{what} {NOT_AN_IMAGE}")
    raise UpstreamError(
        f"the upstream returned an {what} that {NOT_AN_IMAGE}",
        code="invalid_upstream_image",
        retryable=True,
        scope="channel",
    )


async def store_image(
    store: ObjectStore,
    data: bytes,
    attempts: int,
    *,
    origin: Origin = "upstream",
    what: str = "image",
    now: datetime | None = None,
    sleep: Sleep = asyncio.sleep,
) -> StoredImage:
    """Upload `data` under a fresh `{store.key_prefix}yyyy/mm/dd/<hex>.<ext>` key and return its URL.

    Uploads are tried `attempts` times, waiting 0.2 s, 0.4 s, 0.8 s… between tries. Raises
    `StorageUnavailable` when every attempt failed (or the URL could not be made), and
    `check_image`'s errors when `data` is not an image.
    """
    info = check_image(data, origin, what)
    key = make_key(store.key_prefix, info.ext, now)
    await _put_with_retry(store, key, data, info.mime, max(1, attempts), sleep)
    try:
        url = await store.url(key)
    except StorageUnavailable:
        raise
    except Exception as exc:
        log.warning("object store %s: URL for %s failed: %r", store.name, key, exc)
        raise StorageUnavailable("object storage could not make the image URL") from exc
    metrics.image_rehosted(origin, len(data))
    return StoredImage(url=url, key=key, info=info, size=len(data))


async def _put_with_retry(
    store: ObjectStore, key: str, data: bytes, content_type: str, attempts: int, sleep: Sleep
) -> None:
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            await store.put(key, data, content_type)
            return
        except Exception as exc:
            last = exc
            log.warning("object store %s: upload %d/%d failed: %r", store.name, attempt, attempts, exc)
        if attempt < attempts:
            await sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
    raise StorageUnavailable(f"could not store the image after {attempts} attempts") from last
