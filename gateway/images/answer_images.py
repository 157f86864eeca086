"""Images an upstream produced for a chat answer (decoded once, §5.4) made into what the client is shown:
stored with their thought signature when storage is configured, else `data:` URLs (§3.2).

Thought signatures are kept in a small sidecar object next to the image (`<image key>.sig`), in the same
store. Why there: it works across nodes wherever the image does (one S3 bucket), it lives and expires with
the image (same prefix and date folders, so a bucket lifecycle rule removes both), it needs no database
row or migration, and it is read only when a later turn sends the image back (§3.4). Object metadata was
not an option: S3 caps user metadata at 2 KB, and signatures can be larger.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pybase64

from gateway.domain import UpstreamImage
from gateway.errors import StorageUnavailable
from gateway.images.chat_shape import ShownImage
from gateway.images.rehost import check_image, store_image
from gateway.storage.base import ObjectStore, ObjectTooLarge

log = logging.getLogger("gateway.images")

SIGNATURE_SUFFIX = ".sig"
MAX_SIGNATURE_BYTES = 1 << 20


def signature_key(image_key: str) -> str:
    return image_key + SIGNATURE_SUFFIX


async def save_signature(store: ObjectStore, image_key: str, signature: str) -> None:
    """Best effort: without its signature an image can still be edited, with less of its context."""
    data = signature.encode("ascii", errors="replace")
    if len(data) > MAX_SIGNATURE_BYTES:
        log.warning("a thought signature of %d bytes was not kept (over %d)", len(data), MAX_SIGNATURE_BYTES)
        return
    try:
        await store.put(signature_key(image_key), data, "text/plain")
    except Exception as exc:
        log.warning(
            "object store %s: could not keep the thought signature of %s: %r", store.name, image_key, exc
        )


async def load_signature(store: ObjectStore, image_key: str) -> str | None:
    """The signature kept with the image, or None (none was kept, or it cannot be read now)."""
    try:
        data = await store.read(signature_key(image_key), MAX_SIGNATURE_BYTES)
    except (StorageUnavailable, ObjectTooLarge) as exc:
        log.warning(
            "object store %s: the thought signature of %s is not readable: %r", store.name, image_key, exc
        )
        return None
    if not data or not data.isascii():
        return None
    return data.decode("ascii")


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{pybase64.b64encode_as_string(data)}"


async def show_answer_images(
    store: ObjectStore | None, images: Sequence[UpstreamImage], attempts: int, *, keep_data: bool
) -> list[ShownImage]:
    """Each image stored (its signature beside it) and shown by its URL; without storage, or when the
    upload fails, shown as a `data:` URL: an image the client paid for is never dropped (§5.2)."""
    shown: list[ShownImage] = []
    for image in images:
        info = check_image(image.data, "upstream")  # a 200 with something else is the upstream's fault
        if store is not None:
            try:
                stored = await store_image(store, image.data, attempts)
            except StorageUnavailable as exc:
                log.error("storage failed; showing a chat image as a data: URL: %s", exc.message)
            else:
                if image.thought_signature:
                    await save_signature(store, stored.key, image.thought_signature)
                shown.append(ShownImage(stored.url, image.data if keep_data else None))
                continue
        shown.append(ShownImage(data_url(image.data, info.mime)))
    return shown
