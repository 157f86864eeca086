"""Server-sent events: split an upstream byte stream into events, of any size."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

SSEEvent = tuple[bytes | None, bytes]  # (the `event:` name if any, the joined `data:` lines)


def _value(line: bytes, prefix_len: int) -> bytes:
    value = line[prefix_len:]
    return value[1:] if value.startswith(b" ") else value


async def iter_sse_batches(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[SSEEvent]]:
    """Yield, per chunk read, the events it completed (comments and `id:` lines are skipped).

    Relaying a batch at a time keeps writes to the client as few as the upstream's own.
    """
    buffer = bytearray()
    data: list[bytes] = []
    event: bytes | None = None
    async for chunk in chunks:
        scanned = len(buffer)  # the buffer holds no newline before this: don't search it again
        buffer += chunk
        start = 0
        batch: list[SSEEvent] = []
        while True:
            end = buffer.find(b"\n", scanned if start == 0 else start)
            if end < 0:
                break
            line = bytes(buffer[start:end]).rstrip(b"\r")
            start = end + 1
            if not line:
                if data:
                    batch.append((event, b"\n".join(data)))
                data, event = [], None
            elif line.startswith(b"data:"):
                data.append(_value(line, 5))
            elif line.startswith(b"event:"):
                event = _value(line, 6)
        del buffer[:start]
        if batch:
            yield batch
    if buffer.startswith(b"data:"):
        data.append(_value(bytes(buffer).rstrip(b"\r\n"), 5))
    if data:
        yield [(event, b"\n".join(data))]


async def iter_sse_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Each event that carries data, one at a time."""
    async for batch in iter_sse_batches(chunks):
        for event in batch:
            yield event


async def iter_sse_data(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Only the data of each event (chat completions streams carry no event names)."""
    async for _, data in iter_sse_events(chunks):
        yield data
