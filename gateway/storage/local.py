"""Images kept as files under `storage.local.root`, served by the `/files/{key}` route (§5.1).

Writes go to a temporary file in the target directory and are renamed into place, so a reader never
sees a partial image.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import anyio.to_thread

from gateway.errors import StorageUnavailable
from gateway.settings import LocalStorageSettings
from gateway.storage.base import ObjectTooLarge, key_under, valid_key

__all__ = ["LocalStore", "valid_key"]


class LocalStore:
    name = "local"

    def __init__(self, settings: LocalStorageSettings, public_base_url: str) -> None:
        if settings.key_prefix and not valid_key(settings.key_prefix + "x"):
            allowed = "letters, digits, '/', '.', '_' and '-'"
            raise ValueError(f"storage.local.key_prefix {settings.key_prefix!r} may hold only {allowed}")
        self.key_prefix = settings.key_prefix
        self.root = Path(settings.root).absolute()
        self._public_base_url = public_base_url.rstrip("/")

    def _path(self, key: str) -> Path:
        if not valid_key(key):
            raise ValueError(f"invalid object key {key!r}")
        return self.root / key

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        try:
            await anyio.to_thread.run_sync(_write_atomically, path, data)
        except OSError as exc:
            raise StorageUnavailable(
                f"local storage could not write the image ({exc.strerror or type(exc).__name__})"
            ) from exc

    async def url(self, key: str) -> str:
        self._path(key)
        return f"{self._public_base_url}/files/{key}"

    async def read(self, key: str, max_bytes: int) -> bytes | None:
        if not valid_key(key):
            return None
        try:
            return await anyio.to_thread.run_sync(_read_bounded, self.root / key, key, max_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StorageUnavailable(
                f"local storage could not read the image ({exc.strerror or type(exc).__name__})"
            ) from exc

    async def key_of(self, url: str) -> str | None:
        return key_under(url, f"{self._public_base_url}/files", self.key_prefix)

    async def check(self) -> None:
        await anyio.to_thread.run_sync(self._check_writable)

    def _check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"local storage root cannot be created ({exc.strerror})") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable("local storage root is not writable")

    async def close(self) -> None:
        return None

    def open_path(self, key: str) -> Path | None:
        """The file for `key`, or None when the key is not a valid key or no such file exists."""
        if not valid_key(key):
            return None
        path = self.root / key
        return path if path.is_file() else None


def _read_bounded(path: Path, key: str, max_bytes: int) -> bytes:
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise ObjectTooLarge(key, size, max_bytes)
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew since the stat
        raise ObjectTooLarge(key, len(data), max_bytes)
    return data


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
