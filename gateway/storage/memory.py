"""An in-memory `ObjectStore` for tests, with switches to make uploads or readiness fail."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import StorageUnavailable
from gateway.storage.base import ObjectTooLarge, key_under


@dataclass(frozen=True)
class MemoryObject:
    data: bytes
    content_type: str


class MemoryStore:
    name = "memory"

    def __init__(self, base_url: str = "http://storage.test", key_prefix: str = "") -> None:
        self.key_prefix = key_prefix
        self.base_url = base_url.rstrip("/")
        self.objects: dict[str, MemoryObject] = {}
        self.put_attempts = 0
        self.reads: list[str] = []
        self.failing_puts = 0
        self.healthy = True
        self.closed = False

    def fail_next_puts(self, n: int) -> None:
        """Make the next `n` calls to `put` raise `StorageUnavailable`."""
        self.failing_puts = n

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self.put_attempts += 1
        if self.failing_puts > 0:
            self.failing_puts -= 1
            raise StorageUnavailable("object storage upload failed (simulated)")
        self.objects[key] = MemoryObject(data, content_type)

    async def url(self, key: str) -> str:
        return f"{self.base_url}/{key}"

    async def read(self, key: str, max_bytes: int) -> bytes | None:
        self.reads.append(key)
        found = self.objects.get(key)
        if found is None:
            return None
        if len(found.data) > max_bytes:
            raise ObjectTooLarge(key, len(found.data), max_bytes)
        return found.data

    async def key_of(self, url: str) -> str | None:
        return key_under(url, self.base_url, self.key_prefix)

    async def check(self) -> None:
        if not self.healthy:
            raise StorageUnavailable("object storage is unavailable (simulated)")

    async def close(self) -> None:
        self.closed = True
