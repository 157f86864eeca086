"""Server-sent events: split an upstream byte stream into events, of any size."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

SSEEvent = tuple[bytes | None, bytes]  # (the `event:` name if any, the joined `data:` lines)


def _value(line: bytes, prefix_len: int) -> bytes:
    value = line[prefix_len:]
    return value[1:] if value.startswith(b" ") else value


async def iter_sse_batches(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[SSEEvent]]:
    """Yield, per chunk read, the events it completed (comments and `id:` lines are skipped).

    Relaying a batch at a time keeps writes to the client as few as the upstream's own. Only the
    new chunk is searched for a line end, so a 20 MB `data:` line costs linear time.
    """
    pending = bytearray()
    data: list[bytes] = []
    event: bytes | None = None
    async for chunk in chunks:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            pending += chunk
            continue
        if pending:
            pending += chunk[:cut]
            complete, pending = bytes(pending), bytearray(chunk[cut + 1 :])
        else:
            complete, pending = chunk[:cut], bytearray(chunk[cut + 1 :])
        batch: list[SSEEvent] = []
        for line in complete.split(b"\n"):
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    batch.append((event, data[0] if len(data) == 1 else b"\n".join(data)))
                data, event = [], None
            elif line.startswith(b"data:"):
                data.append(_value(line, 5))
            elif line.startswith(b"event:"):
                event = _value(line, 6)
        if batch:
            yield batch
    if pending.startswith(b"data:"):
        data.append(_value(bytes(pending).rstrip(b"\r\n"), 5))
    if data:
        yield [(event, b"\n".join(data))]


async def iter_sse_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Each event that carries data, one at a time."""
    async for batch in iter_sse_batches(chunks):
        for event in batch:
            yield event
