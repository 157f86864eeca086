"""The `ObjectStore` protocol every storage backend implements, and how object keys are made (§5.2)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import unquote

# Segments of letters, digits, `.`, `_` and `-` that never start with a dot: no `..`, no hidden or
# temporary files, no absolute paths, no empty segments.
_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
_MAX_KEY_LENGTH = 1024


def valid_key(key: str) -> bool:
    return len(key) <= _MAX_KEY_LENGTH and _KEY.fullmatch(key) is not None


@dataclass(frozen=True)
class StoredObject:
    key: str
    url: str
    size: int
    mime: str


class ObjectTooLarge(Exception):
    """`read` found an object over the size the caller allows: nothing of it was kept."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        super().__init__(f"object {key} holds {size} bytes, over the limit of {limit}")
        self.size = size
        self.limit = limit


class ObjectStore(Protocol):
    """Where re-hosted images go. Every method may raise; `put` failures are retried by the caller."""

    name: str
    key_prefix: str

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def url(self, key: str) -> str: ...

    async def read(self, key: str, max_bytes: int) -> bytes | None:
        """The object's bytes; None when there is no such object. Raises `ObjectTooLarge` past
        `max_bytes` (without reading the rest), `StorageUnavailable` when the store fails."""
        ...

    async def key_of(self, url: str) -> str | None:
        """The key of this store's object that `url` (as `url()` gave it) points at, else None."""
        ...

    async def check(self) -> None:
        """Readiness: return when the store can take writes, raise when it cannot."""
        ...

    async def close(self) -> None: ...


def make_key(prefix: str, ext: str, now: datetime | None = None) -> str:
    """`{prefix}{yyyy}/{mm}/{dd}/{128-bit random hex}.{ext}`, dated in UTC (a naive `now` is taken as UTC)."""
    when = now or datetime.now(UTC)
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return f"{prefix}{when:%Y/%m/%d}/{secrets.token_hex(16)}.{ext}"


def key_under(url: str, base: str, key_prefix: str) -> str | None:
    """The key `url` names when it is `base` + `/` + a quoted key of this store (query and fragment
    ignored: presigned URLs carry their signature there), else None."""
    path = url.split("#", 1)[0].split("?", 1)[0]
    start = base.rstrip("/") + "/"
    if not path.startswith(start):
        return None
    key = unquote(path[len(start) :])
    return key if key.startswith(key_prefix) and valid_key(key) else None
