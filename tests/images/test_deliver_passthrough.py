"""Base64 kept as the upstream's text (`Base64Image`) through delivery: passed on as the same object
when the client gets base64, sniffed first; decoded only to be stored; given back if storing fails."""

from __future__ import annotations

import base64
from typing import Any, cast

import pytest

from gateway.domain import Base64Image
from gateway.errors import UpstreamError
from gateway.images.fetch import ImageFetcher
from gateway.images.output import Delivery, deliver
from gateway.storage.memory import MemoryStore
from tests.images.samples import png


class BrokenStore(MemoryStore):
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        raise RuntimeError("storage is down")


def delivery(wanted: Any, store: MemoryStore | None) -> Delivery:
    return Delivery(
        wanted=wanted,
        store=store,
        fetcher=cast(ImageFetcher, None),
        upload_attempts=1,
        rehost_urls=False,
        base64_allowed=True,
    )


def kept(data: bytes) -> Base64Image:
    return Base64Image(memoryview(bytearray(b'"' + base64.b64encode(data) + b'"'))[1:-1], "image/png")


@pytest.mark.parametrize("wanted", ["b64_json", None])
async def test_an_image_passes_through_as_the_same_text(wanted: Any) -> None:
    image = kept(png())
    items: list[Any] = [{"b64_json": image}]
    assert await deliver(items, delivery(wanted, MemoryStore())) == []
    assert items[0]["b64_json"] is image


@pytest.mark.parametrize("data", [b"%PDF-1.7 not an image", b""], ids=["pdf", "empty"])
async def test_what_is_no_image_is_refused_though_it_would_only_pass_through(data: bytes) -> None:
    with pytest.raises(UpstreamError) as err:
        await deliver([{"b64_json": kept(data)}], delivery("b64_json", MemoryStore()))
    assert (err.value.status, err.value.code) == (502, "invalid_upstream_image")


async def test_stored_when_a_url_is_wanted() -> None:
    store = MemoryStore()
    items: list[Any] = [{"b64_json": kept(png())}]
    assert await deliver(items, delivery("url", store)) == []
    assert "b64_json" not in items[0] and list(store.objects.values())[0].data == png()


async def test_storage_down_gives_back_the_upstreams_own_base64() -> None:
    image = kept(png())
    items: list[Any] = [{"b64_json": image}]
    warnings = await deliver(items, delivery("url", BrokenStore()))
    assert warnings and items[0]["b64_json"] is image  # not decoded and encoded again
