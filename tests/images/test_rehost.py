import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.errors import InvalidImage, StorageUnavailable, UpstreamError
from gateway.images.rehost import StoredImage, store_image
from gateway.images.sniff import ImageInfo
from gateway.storage.memory import MemoryObject, MemoryStore
from tests.images.samples import make_image, png

KEY = re.compile(r"^\d{4}/\d{2}/\d{2}/[0-9a-f]{32}\.png$")


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


async def test_stores_under_a_dated_random_key() -> None:
    store, data = MemoryStore(), png((12, 7))
    stored = await store_image(store, data, 3, now=datetime(2025, 3, 9, 23, 30, tzinfo=UTC))
    assert KEY.match(stored.key)
    assert stored.key.startswith("2025/03/09/")
    assert stored == StoredImage(
        url=f"http://storage.test/{stored.key}",
        key=stored.key,
        info=ImageInfo("image/png", "png", 12, 7),
        size=len(data),
    )
    assert store.objects == {stored.key: MemoryObject(data, "image/png")}


async def test_key_date_is_utc_and_keys_are_unique() -> None:
    store = MemoryStore()
    tokyo = timezone(timedelta(hours=9))
    first = await store_image(store, png(), 1, now=datetime(2025, 1, 1, 5, 0, tzinfo=tokyo))
    second = await store_image(store, png(), 1)
    assert first.key.startswith("2024/12/31/")
    assert KEY.match(second.key)
    assert first.key != second.key


async def test_prefix_and_extension_come_from_the_store_and_the_bytes() -> None:
    store = MemoryStore(key_prefix="gw/images/")
    stored = await store_image(store, make_image("JPEG", (9, 9)), 1)
    assert re.match(r"^gw/images/\d{4}/\d{2}/\d{2}/[0-9a-f]{32}\.jpg$", stored.key)
    assert store.objects[stored.key].content_type == "image/jpeg"
    webp = await store_image(store, make_image("WEBP", (9, 9)), 1)
    assert webp.key.endswith(".webp")
    assert store.objects[webp.key].content_type == "image/webp"


async def test_retries_with_backoff_then_succeeds() -> None:
    store, sleeps = MemoryStore(), Sleeps()
    store.fail_next_puts(2)
    stored = await store_image(store, png(), 3, sleep=sleeps)
    assert store.put_attempts == 3
    assert sleeps.calls == [0.2, 0.4]
    assert stored.key in store.objects


async def test_gives_up_after_the_last_attempt() -> None:
    store, sleeps = MemoryStore(), Sleeps()
    store.fail_next_puts(10)
    with pytest.raises(StorageUnavailable, match="after 4 attempts") as err:
        await store_image(store, png(), 4, sleep=sleeps)
    assert err.value.status == 502
    assert err.value.code == "storage_unavailable"
    assert store.put_attempts == 4
    assert sleeps.calls == [0.2, 0.4, 0.8]
    assert store.objects == {}


class BrokenStore(MemoryStore):
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self.put_attempts += 1
        raise RuntimeError("socket exploded")


async def test_any_put_failure_is_retried_and_reported_as_storage_unavailable() -> None:
    store, sleeps = BrokenStore(), Sleeps()
    with pytest.raises(StorageUnavailable) as err:
        await store_image(store, png(), 2, sleep=sleeps)
    assert isinstance(err.value.__cause__, RuntimeError)
    assert store.put_attempts == 2


class NoURLStore(MemoryStore):
    async def url(self, key: str) -> str:
        raise RuntimeError("presign failed")


async def test_url_failure_is_storage_unavailable() -> None:
    with pytest.raises(StorageUnavailable, match="could not make the image URL"):
        await store_image(NoURLStore(), png(), 1)


async def test_upstream_bytes_that_are_not_an_image() -> None:
    store = MemoryStore()
    with pytest.raises(UpstreamError) as err:
        await store_image(store, b"<html>oops</html>", 3)
    assert err.value.code == "invalid_upstream_image"
    assert err.value.status == 502
    assert err.value.retryable
    assert store.put_attempts == 0


async def test_client_bytes_that_are_not_an_image() -> None:
    store = MemoryStore()
    with pytest.raises(InvalidImage, match=r"^image\[0\] is not a PNG, JPEG, WEBP or GIF image$"):
        await store_image(store, b"GIF00", 3, origin="client", what="image[0]")
    assert store.put_attempts == 0
