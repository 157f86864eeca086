"""Images kept as files under `storage.local.root`, served by the `/files/{key}` route (§5.1).

Writes go to a temporary file in the target directory and are renamed into place, so a reader never
sees a partial image.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

import anyio.to_thread

from gateway.errors import StorageUnavailable
from gateway.settings import LocalStorageSettings

# Segments of letters, digits, `.`, `_` and `-` that never start with a dot: no `..`, no hidden or
# temporary files, no absolute paths, no empty segments.
_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
_MAX_KEY_LENGTH = 1024


def valid_key(key: str) -> bool:
    return len(key) <= _MAX_KEY_LENGTH and _KEY.fullmatch(key) is not None


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
