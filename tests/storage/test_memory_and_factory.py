import re
from datetime import datetime
from pathlib import Path

import pytest

from gateway.errors import StorageUnavailable
from gateway.settings import LocalStorageSettings, S3Settings, StorageSettings
from gateway.storage.base import ObjectStore, ObjectTooLarge, make_key
from gateway.storage.factory import build_store
from gateway.storage.local import LocalStore
from gateway.storage.memory import MemoryObject, MemoryStore
from gateway.storage.s3 import S3Store


def test_make_key() -> None:
    key = make_key("p/", "gif", datetime(2024, 2, 29, 12, 0))
    assert re.fullmatch(r"p/2024/02/29/[0-9a-f]{32}\.gif", key)
    assert make_key("", "png") != make_key("", "png")


async def test_memory_store() -> None:
    store: ObjectStore = MemoryStore(base_url="http://m.test/", key_prefix="k/")
    assert isinstance(store, MemoryStore)
    await store.put("k/a.png", b"abc", "image/png")
    assert store.objects == {"k/a.png": MemoryObject(b"abc", "image/png")}
    assert await store.url("k/a.png") == "http://m.test/k/a.png"
    store.fail_next_puts(1)
    with pytest.raises(StorageUnavailable):
        await store.put("k/b.png", b"abc", "image/png")
    await store.put("k/b.png", b"abc", "image/png")
    assert store.put_attempts == 3
    await store.check()
    store.healthy = False
    with pytest.raises(StorageUnavailable):
        await store.check()
    await store.close()
    assert store.closed


async def test_build_store(tmp_path: Path) -> None:
    assert build_store(StorageSettings(backend="none"), "http://gw.test") is None

    local = build_store(
        StorageSettings(backend="local", local=LocalStorageSettings(root=str(tmp_path), key_prefix="i/")),
        "http://gw.test",
    )
    assert isinstance(local, LocalStore)
    assert (local.name, local.key_prefix, local.root) == ("local", "i/", tmp_path)

    s3 = build_store(
        StorageSettings(
            backend="s3",
            s3=S3Settings(bucket="b", endpoint_url="http://127.0.0.1:1", region="auto", key_prefix="x/"),
        ),
        "http://gw.test",
    )
    assert isinstance(s3, S3Store)
    assert (s3.name, s3.key_prefix, s3.bucket) == ("s3", "x/", "b")
    await s3.close()


async def test_memory_store_read_and_key_of() -> None:
    store = MemoryStore(base_url="http://m.test/", key_prefix="k/")
    await store.put("k/a.png", b"abc", "image/png")
    assert await store.read("k/a.png", 3) == b"abc"
    assert await store.read("k/b.png", 3) is None
    with pytest.raises(ObjectTooLarge):
        await store.read("k/a.png", 2)
    assert await store.key_of(await store.url("k/a.png")) == "k/a.png"
    assert await store.key_of("http://other.test/k/a.png") is None
