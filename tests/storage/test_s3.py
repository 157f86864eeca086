import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from email.message import Message
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
import pytest

from gateway.errors import StorageUnavailable
from gateway.images.rehost import store_image
from gateway.settings import S3Settings
from gateway.storage.base import ObjectTooLarge, make_key
from gateway.storage.s3 import S3Store
from tests.images.samples import make_image, png
from tests.s3server import S3Endpoint

MakeStore = Callable[[S3Settings], S3Store]


def _get(url: str) -> tuple[int, Message, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.headers, resp.read()


async def http_get(url: str) -> tuple[int, Message, bytes]:
    return await anyio.to_thread.run_sync(_get, url)


@pytest.fixture
def bucket(s3_endpoint: S3Endpoint) -> str:
    return s3_endpoint.create_bucket()


@pytest.fixture
async def make_store() -> AsyncIterator[MakeStore]:
    stores: list[S3Store] = []

    def make(settings: S3Settings) -> S3Store:
        store = S3Store(settings)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


async def test_put_then_presigned_url_downloads_the_bytes(
    s3_endpoint: S3Endpoint, bucket: str, make_store: MakeStore
) -> None:
    store = make_store(s3_endpoint.settings(bucket, presign_ttl_seconds=3600, key_prefix="gw/"))
    data = make_image("JPEG", (20, 10))
    key = make_key(store.key_prefix, "jpg")
    await store.put(key, data, "image/jpeg")

    url = await store.url(key)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.path == f"/{bucket}/{key}"
    assert query["X-Amz-Expires"] == ["3600"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    status, headers, body = await http_get(url)
    assert status == 200
    assert body == data
    assert headers["Content-Type"] == "image/jpeg"
    with pytest.raises(urllib.error.HTTPError) as err:  # the bucket is private: the signature matters
        await http_get(f"{s3_endpoint.url}/{bucket}/{key}")
    assert err.value.code == 403
    err.value.close()


async def test_public_base_url(s3_endpoint: S3Endpoint, make_store: MakeStore) -> None:
    bucket = s3_endpoint.create_bucket(public_read=True)
    base = f"{s3_endpoint.url}/{bucket}/"
    store = make_store(s3_endpoint.settings(bucket, public_base_url=base))
    data = png((3, 3))
    await store.put("2025/01/02/abc.png", data, "image/png")
    url = await store.url("2025/01/02/abc.png")
    assert url == f"{s3_endpoint.url}/{bucket}/2025/01/02/abc.png"
    status, headers, body = await http_get(url)
    assert (status, body, headers["Content-Type"]) == (200, data, "image/png")


async def test_store_image_end_to_end(s3_endpoint: S3Endpoint, bucket: str, make_store: MakeStore) -> None:
    store = make_store(s3_endpoint.settings(bucket, key_prefix="out/"))
    data = make_image("WEBP", (30, 20), quality=60)
    stored = await store_image(store, data, 3)
    assert stored.key.startswith("out/") and stored.key.endswith(".webp")
    assert (stored.info.width, stored.info.height) == (30, 20)
    _, headers, body = await http_get(stored.url)
    assert body == data
    assert headers["Content-Type"] == "image/webp"


async def test_check(s3_endpoint: S3Endpoint, bucket: str, make_store: MakeStore) -> None:
    await make_store(s3_endpoint.settings(bucket)).check()


async def test_check_fails_for_a_missing_bucket(s3_endpoint: S3Endpoint, make_store: MakeStore) -> None:
    store = make_store(s3_endpoint.settings("no-such-bucket-here"))
    with pytest.raises(StorageUnavailable, match=r"^object storage bucket check failed \(404\)$") as err:
        await store.check()
    assert err.value.code == "storage_unavailable"
    assert s3_endpoint.url not in err.value.message


async def test_put_fails_for_a_missing_bucket(s3_endpoint: S3Endpoint, make_store: MakeStore) -> None:
    store = make_store(s3_endpoint.settings("no-such-bucket-here"))
    with pytest.raises(StorageUnavailable, match=r"^object storage upload failed \(NoSuchBucket\)$"):
        await store.put("a.png", png(), "image/png")


@pytest.fixture
def closed_port() -> Iterator[int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


async def test_unreachable_endpoint(closed_port: int, make_store: MakeStore) -> None:
    settings = S3Endpoint(f"http://127.0.0.1:{closed_port}").settings("bucket")
    store = make_store(settings)
    with pytest.raises(
        StorageUnavailable, match=r"^object storage upload failed \(EndpointConnectionError\)$"
    ):
        await store.put("a.png", png(), "image/png")


async def test_read_back_what_was_stored_bounded(
    s3_endpoint: S3Endpoint, bucket: str, make_store: MakeStore
) -> None:
    store = make_store(s3_endpoint.settings(bucket, key_prefix="gw/"))
    data = png((5, 5))
    await store.put("gw/a.png", data, "image/png")
    assert await store.read("gw/a.png", len(data)) == data
    assert await store.read("gw/missing.png", 100) is None
    with pytest.raises(ObjectTooLarge):
        await store.read("gw/a.png", len(data) - 1)


async def test_read_from_a_missing_bucket_is_a_storage_failure(
    s3_endpoint: S3Endpoint, make_store: MakeStore
) -> None:
    store = make_store(s3_endpoint.settings("no-such-bucket-here"))
    with pytest.raises(StorageUnavailable, match="NoSuchBucket"):
        await store.read("a.png", 100)


@pytest.mark.parametrize("style", ["path", "virtual"])
async def test_key_of_a_presigned_url(
    s3_endpoint: S3Endpoint, bucket: str, make_store: MakeStore, style: str
) -> None:
    store = make_store(s3_endpoint.settings(bucket, key_prefix="gw/", addressing_style=style))
    key = make_key(store.key_prefix, "png")
    assert await store.key_of(await store.url(key)) == key
    assert await store.key_of(f"{s3_endpoint.url}/other-bucket/{key}") is None
    assert await store.key_of(f"https://example.com/{bucket}/{key}") is None


async def test_key_of_a_public_url(s3_endpoint: S3Endpoint, bucket: str, make_store: MakeStore) -> None:
    store = make_store(s3_endpoint.settings(bucket, public_base_url="https://cdn.test/img/", key_prefix="p/"))
    assert await store.key_of(await store.url("p/2025/a.png")) == "p/2025/a.png"
    assert await store.key_of("https://cdn.test/img/q/a.png") is None
