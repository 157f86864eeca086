"""Input images (§3.4, §5.3): data URLs decoded, this gateway's own storage URLs read from the store with the
signature kept beside the image, other URLs through the fetcher; each at most once per request."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import cast

import pytest

from gateway.domain import DecodedImage
from gateway.errors import InvalidImage, InvalidImageURL, StorageUnavailable
from gateway.images.answer_images import show_answer_images, signature_key
from gateway.images.fetch import FetchedImage, ImageFetcher
from gateway.images.resolver import InputResolver
from gateway.images.sniff import sniff
from gateway.storage.memory import MemoryStore
from tests.images.samples import make_image, png

PNG = png((6, 6))


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


SIGNATURE = "c2lnbmF0dXJl"


@dataclass
class Fetcher:
    max_bytes: int = 1 << 20
    urls: list[str] = field(default_factory=list)

    async def fetch(self, url: str, what: str) -> FetchedImage:
        self.urls.append(url)
        info = sniff(PNG)
        assert info is not None
        return FetchedImage(PNG, info)


def resolver(store: MemoryStore | None, fetcher: Fetcher, *, memo: bool = True) -> InputResolver:
    return InputResolver(store, cast(ImageFetcher, fetcher), memo=memo)


async def test_a_data_url_is_decoded_and_typed_by_its_bytes() -> None:
    jpeg = make_image("JPEG", (5, 5))
    image = await resolver(None, Fetcher())(data_url(jpeg, "image/png"), "x")
    assert (image.data, image.mime, image.thought_signature) == (jpeg, "image/jpeg", None)


async def test_our_storage_url_is_read_from_the_store_with_its_signature() -> None:
    store, fetcher = MemoryStore(), Fetcher()
    (shown,) = await show_answer_images(
        store, [DecodedImage(PNG, "image/png", SIGNATURE)], 1, keep_data=False
    )
    image = await resolver(store, fetcher)(shown.url, "x")
    assert (image.data, image.mime, image.thought_signature) == (PNG, "image/png", SIGNATURE)
    assert fetcher.urls == []


async def test_other_urls_go_through_the_fetcher() -> None:
    fetcher = Fetcher()
    image = await resolver(MemoryStore(), fetcher)("https://elsewhere.test/a.png", "x")
    assert image.data == PNG and image.thought_signature is None
    assert fetcher.urls == ["https://elsewhere.test/a.png"]


async def test_each_url_is_resolved_once_per_request() -> None:
    fetcher = Fetcher()
    resolve = resolver(None, fetcher)
    for _ in range(3):
        await resolve("https://elsewhere.test/a.png", "x")
    await resolve.for_request()("https://elsewhere.test/a.png", "x")  # another request: its own memo
    assert len(fetcher.urls) == 2


async def test_a_stored_image_that_is_gone_or_too_large_is_a_400() -> None:
    store = MemoryStore()
    with pytest.raises(InvalidImageURL, match="does not have"):
        await resolver(store, Fetcher())(await store.url("2020/01/01/gone.png"), "x")
    await store.put("big.png", PNG, "image/png")
    with pytest.raises(InvalidImageURL, match="is over"):
        await resolver(store, Fetcher(max_bytes=10))(await store.url("big.png"), "x")


async def test_a_signature_object_is_not_an_input_image() -> None:
    store, fetcher = MemoryStore(), Fetcher()
    (shown,) = await show_answer_images(
        store, [DecodedImage(PNG, "image/png", SIGNATURE)], 1, keep_data=False
    )
    await resolver(store, fetcher)(shown.url + ".sig", "x")
    assert fetcher.urls == [shown.url + ".sig"]  # not read from the store: fetched, as anyone's URL


@pytest.mark.parametrize("url", ["ftp://x/a.png", "file:///etc/passwd", "", "data:text/plain;base64,AAAA"])
async def test_bad_references_are_400s(url: str) -> None:
    with pytest.raises((InvalidImageURL, InvalidImage)):
        await resolver(None, Fetcher())(url, "x")


async def test_answer_images_are_stored_with_a_sidecar_signature() -> None:
    store = MemoryStore()
    images = [DecodedImage(PNG, "image/png", SIGNATURE), DecodedImage(PNG, "image/png")]
    shown = await show_answer_images(store, images, 1, keep_data=True)
    signed, unsigned = (str(s.url).removeprefix("http://storage.test/") for s in shown)
    assert set(store.objects) == {signed, unsigned, signature_key(signed)}
    assert store.objects[signature_key(signed)].data == SIGNATURE.encode()
    assert [s.data for s in shown] == [PNG, PNG]


async def test_answer_images_fall_back_to_data_urls_without_storage_or_when_it_fails() -> None:
    (inline,) = await show_answer_images(None, [DecodedImage(PNG, "image/webp")], 1, keep_data=False)
    assert inline.url == data_url(PNG)  # the type its bytes say, not the upstream's claim
    store = MemoryStore()
    store.fail_next_puts(5)
    (fallback,) = await show_answer_images(store, [DecodedImage(PNG)], 2, keep_data=False)
    assert fallback.url == data_url(PNG) and store.objects == {}


async def test_a_storage_outage_while_reading_is_a_storage_error_not_a_fetch() -> None:
    class Down(MemoryStore):
        async def read(self, key: str, max_bytes: int) -> bytes | None:
            raise StorageUnavailable("down")

    store, fetcher = Down(), Fetcher()
    with pytest.raises(StorageUnavailable):
        await resolver(store, fetcher)(await store.url("a.png"), "x")
    assert fetcher.urls == []
