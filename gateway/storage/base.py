"""The `ObjectStore` protocol every storage backend implements, and how object keys are made (§5.2)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


@dataclass(frozen=True)
class StoredObject:
    key: str
    url: str
    size: int
    mime: str


class ObjectStore(Protocol):
    """Where re-hosted images go. Every method may raise; `put` failures are retried by the caller."""

    name: str
    key_prefix: str

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def url(self, key: str) -> str: ...

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
