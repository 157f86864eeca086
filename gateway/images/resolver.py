"""The one way input images become bytes (`domain.ImageResolver`): a client's `data:` URL is decoded, a URL
of this gateway's own storage is read straight from the store (with the thought signature kept beside it,
§3.4), and any other http(s) URL goes through the SSRF-safe fetcher (§5.3).

Reading our own URLs from the store matters twice: the local backend's URLs are loopback addresses the
fetcher refuses, and only the store knows an image's signature. Every read is bounded by
`limits.max_image_download_mb`, as a download is.
"""

from __future__ import annotations

from gateway.domain import InputImage
from gateway.errors import InvalidImageURL
from gateway.images.answer_images import SIGNATURE_SUFFIX, load_signature
from gateway.images.fetch import ImageFetcher
from gateway.images.inputs import check_reference, decode_data_url
from gateway.images.sniff import sniff
from gateway.storage.base import ObjectStore, ObjectTooLarge

_MB = 1024 * 1024


class InputResolver:
    """Resolves image references; with `memo`, each URL once per request (failover attempts, and one
    image referenced twice, reuse it). The shared instance has no memo: it would grow forever."""

    def __init__(self, store: ObjectStore | None, fetcher: ImageFetcher, *, memo: bool = False) -> None:
        self._store = store
        self._fetcher = fetcher
        self._memo: dict[str, InputImage] | None = {} if memo else None

    def for_request(self) -> InputResolver:
        return InputResolver(self._store, self._fetcher, memo=True)

    async def __call__(self, url: str, what: str) -> InputImage:
        memo = self._memo
        if memo is not None and url in memo:
            return memo[url]
        image = await self._resolve(url, what)
        if memo is not None:
            memo[url] = image
        return image

    async def _resolve(self, url: str, what: str) -> InputImage:
        check_reference(url, what)
        if url[:5].lower() == "data:":
            decoded = decode_data_url(url, what)
            return InputImage(decoded.data, decoded.info.mime)
        store = self._store
        key = await store.key_of(url) if store is not None else None
        if store is not None and key is not None and not key.endswith(SIGNATURE_SUFFIX):
            return await self._stored(store, key, what)
        fetched = await self._fetcher.fetch(url, what)
        return InputImage(fetched.data, fetched.info.mime)

    async def _stored(self, store: ObjectStore, key: str, what: str) -> InputImage:
        limit = self._fetcher.max_bytes
        try:
            data = await store.read(key, limit)
        except ObjectTooLarge:
            raise InvalidImageURL(f"{what} is over {limit / _MB:g} MB") from None
        if data is None:
            raise InvalidImageURL(f"{what} points at an image this gateway does not have (any more)")
        info = sniff(data)
        if info is None:
            raise InvalidImageURL(f"{what} is not a PNG, JPEG, WEBP or GIF image")
        return InputImage(data, info.mime, await load_signature(store, key))
