"""Server-sent events: split an upstream byte stream into `data:` payloads, of any size."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def iter_sse_data(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Yield the joined `data:` lines of each event; comments, `event:` and `id:` lines are skipped."""
    buffer = bytearray()
    data: list[bytes] = []
    async for chunk in chunks:
        buffer += chunk
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = bytes(buffer[start:end]).rstrip(b"\r")
            start = end + 1
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
        del buffer[:start]
    if buffer.startswith(b"data:"):
        value = bytes(buffer[5:]).rstrip(b"\r\n")
        data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        yield b"\n".join(data)
