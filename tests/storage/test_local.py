import os
import re
from pathlib import Path

import pytest

from gateway.errors import StorageUnavailable
from gateway.settings import LocalStorageSettings
from gateway.storage.base import ObjectTooLarge, make_key
from gateway.storage.local import LocalStore, valid_key
from tests.images.samples import png


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(
        LocalStorageSettings(root=str(tmp_path / "images"), key_prefix="gw/"), "http://gw.test:8080/"
    )


async def test_put_url_and_open_path(store: LocalStore) -> None:
    data = png((4, 4))
    key = make_key(store.key_prefix, "png")
    await store.put(key, data, "image/png")
    assert await store.url(key) == f"http://gw.test:8080/files/{key}"
    path = store.open_path(key)
    assert path is not None
    assert path.read_bytes() == data
    assert path == store.root / key
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


async def test_put_replaces_atomically(store: LocalStore) -> None:
    await store.put("gw/a.png", b"first", "image/png")
    await store.put("gw/a.png", b"second", "image/png")
    path = store.open_path("gw/a.png")
    assert path is not None and path.read_bytes() == b"second"


async def test_open_path_of_a_missing_key(store: LocalStore) -> None:
    assert store.open_path("gw/2025/01/01/" + "0" * 32 + ".png") is None


@pytest.mark.parametrize(
    "key",
    [
        "../secret.png",
        "gw/../../etc/passwd",
        "/etc/passwd",
        "gw//a.png",
        "gw/./a.png",
        ".hidden.png",
        "gw/.a.png.tmp",
        "gw/a.png/",
        "gw\\..\\a.png",
        "gw/%2e%2e/a.png",
        "gw/a b.png",
        "gw/ä.png",
        "",
        "a" * 1025,
    ],
)
async def test_unsafe_keys_are_refused(store: LocalStore, key: str, tmp_path: Path) -> None:
    (tmp_path / "secret.png").write_bytes(b"secret")
    assert not valid_key(key)
    assert store.open_path(key) is None
    with pytest.raises(ValueError, match="invalid object key"):
        await store.put(key, b"x", "image/png")


def test_valid_keys() -> None:
    for key in ["a.png", "gw/2025/01/02/" + "f" * 32 + ".webp", "x_y-z/1.2.jpg"]:
        assert valid_key(key)


def test_bad_key_prefix_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key_prefix"):
        LocalStore(LocalStorageSettings(root=str(tmp_path), key_prefix="../up/"), "http://gw.test")


async def test_check_creates_the_root(store: LocalStore) -> None:
    assert not store.root.exists()
    await store.check()
    assert store.root.is_dir()
    await store.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
async def test_check_fails_when_the_root_is_read_only(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        store = LocalStore(LocalStorageSettings(root=str(tmp_path / "images")), "http://gw.test")
        with pytest.raises(StorageUnavailable):
            await store.check()
    finally:
        tmp_path.chmod(0o755)


async def test_write_failure_is_storage_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")  # a file where the root directory should be
    store = LocalStore(LocalStorageSettings(root=str(blocker)), "http://gw.test")
    with pytest.raises(StorageUnavailable, match=re.escape("local storage could not write the image")):
        await store.put("a/b.png", png(), "image/png")
    with pytest.raises(StorageUnavailable, match="cannot be created"):
        await store.check()


async def test_read_gives_back_what_was_stored_and_none_for_a_missing_key(store: LocalStore) -> None:
    data = png((4, 4))
    key = make_key(store.key_prefix, "png")
    await store.put(key, data, "image/png")
    assert await store.read(key, len(data)) == data
    assert await store.read(key + ".sig", 100) is None
    assert await store.read("gw/../etc/passwd", 100) is None


async def test_read_refuses_an_object_over_the_limit(store: LocalStore) -> None:
    await store.put("gw/big.png", b"x" * 100, "image/png")
    with pytest.raises(ObjectTooLarge) as err:
        await store.read("gw/big.png", 99)
    assert (err.value.size, err.value.limit) == (100, 99)


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://gw.test:8080/files/gw/2025/01/01/ab.png", "gw/2025/01/01/ab.png"),
        ("http://gw.test:8080/files/gw/a.png?x=1#y", "gw/a.png"),
        ("http://gw.test:8080/files/gw/%61.png", "gw/a.png"),
        ("http://gw.test:8080/files/other/a.png", None),  # not under the key prefix
        ("http://gw.test:8080/files/gw/../a.png", None),
        ("http://elsewhere.test/files/gw/a.png", None),
        ("https://gw.test:8080/files/gw/a.png", None),
        ("http://gw.test:8080/filesgw/a.png", None),
        ("data:image/png;base64,AAAA", None),
    ],
)
async def test_key_of_knows_only_this_stores_urls(store: LocalStore, url: str, key: str | None) -> None:
    assert await store.key_of(url) == key


async def test_key_of_reads_back_the_url_put_gave(store: LocalStore) -> None:
    key = make_key(store.key_prefix, "png")
    assert await store.key_of(await store.url(key)) == key
