"""Server-sent events: split an upstream byte stream into events, each at most a bounded size."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterator, Sequence
from typing import overload

import orjson

from gateway.errors import UpstreamTooLarge

SSEEvent = tuple[bytes | None, bytes]  # (the `event:` name if any, the joined `data:` lines)
DEFAULT_MAX_EVENT_BYTES = 128 * 1024 * 1024
DONE = b"data: [DONE]\n\n"  # the last event of an OpenAI stream: nothing follows it but the body's end


def _value(line: bytes, prefix_len: int) -> bytes:
    value = line[prefix_len:]
    return value[1:] if value.startswith(b" ") else value


def _too_large(limit: int, pending: bytearray, data: list[bytes]) -> UpstreamTooLarge:
    """The error; the buffers are emptied, as the error's traceback keeps the generator's frame."""
    pending.clear()
    data.clear()
    return UpstreamTooLarge(f"an event of the upstream's stream is larger than the limit of {limit} bytes")


def _whole(data: bytes) -> bool:
    """A last event the stream did not end with a blank line counts only if nothing of it is missing."""
    if data == b"[DONE]":
        return True
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


class PlainRun(Sequence[SSEEvent]):
    """Events that came as only `data: …` lines each followed by a blank line (how upstreams send), kept
    as those bytes: `raw` is the `n` events framed as they came. A relay that can pass them on as they
    are reads `raw` alone; the events themselves are split out only when asked for."""

    __slots__ = ("_events", "n", "raw")

    def __init__(self, raw: bytes, n: int) -> None:
        self.raw = raw
        self.n = n
        self._events: list[SSEEvent] | None = None

    def events(self) -> list[SSEEvent]:
        if self._events is None:
            self._events = [(None, data) for data in plain_datas(self.raw)]
        return self._events

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, index: int) -> SSEEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[SSEEvent]: ...

    def __getitem__(self, index: int | slice) -> SSEEvent | list[SSEEvent]:
        return self.events()[index]

    def __iter__(self) -> Iterator[SSEEvent]:
        return iter(self.events())

    def __eq__(self, other: object) -> bool:
        return list(self) == (list(other) if isinstance(other, Sequence) else other)

    __hash__ = None  # type: ignore[assignment]


def plain_datas(raw: bytes) -> list[bytes]:
    """The data of each event of `raw`, events framed as `data: …` and a blank line (a PlainRun's shape)."""
    return [part[6:] for part in raw[:-2].split(b"\n\n")]


def _plain_run(chunk: bytes, cut: int, max_event_bytes: int) -> PlainRun | None:
    """The events of `chunk[:cut + 1]` when it is only `data: …` lines each followed by a blank line:
    three searches instead of a few tests per line. None for anything else (comments, names, multi-line
    data, CRLF, a line not yet ended), which the line by line parser takes."""
    if chunk[cut - 1 : cut + 1] != b"\n\n" or cut + 1 > max_event_bytes:
        return None
    raw = chunk if cut + 1 == len(chunk) else chunk[: cut + 1]
    if not raw.startswith(b"data: ") or b"\r" in raw:
        return None
    count = raw.count(b"\n\ndata: ") + 1
    if raw.count(b"\n") != 2 * count:
        return None  # a single line end, or three in a row: not the plain shape
    return PlainRun(raw, count)


async def iter_sse_batches(
    chunks: AsyncIterable[bytes], max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> AsyncIterator[list[SSEEvent] | PlainRun]:
    """Yield, per chunk read, the events it completed (comments and `id:` lines are skipped).

    Relaying a batch at a time keeps writes to the client as few as the upstream's own. Only the
    new chunk is searched for a line end, so a 20 MB `data:` line costs linear time. An event (its
    lines so far, and the unfinished line) over `max_event_bytes` raises UpstreamTooLarge at once:
    an upstream that never sends a newline cannot grow the buffer without bound. At the end of the
    stream an event cut before its blank line is dropped, as the SSE spec says, unless it is whole.
    """
    pending = bytearray()
    data: list[bytes] = []
    size = 0  # bytes of the current event's `data:` lines
    event: bytes | None = None
    async for chunk in chunks:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            if size + len(pending) + len(chunk) > max_event_bytes:
                raise _too_large(max_event_bytes, pending, data)
            pending += chunk
            continue
        if pending:
            pending += chunk[:cut]
            complete, pending = bytes(pending), bytearray(chunk[cut + 1 :])
        else:
            plain = None if data or event is not None else _plain_run(chunk, cut, max_event_bytes)
            complete, pending = chunk[:cut], bytearray(chunk[cut + 1 :])
            if plain is not None:
                if len(pending) > max_event_bytes:
                    raise _too_large(max_event_bytes, pending, data)
                yield plain
                continue
        batch: list[SSEEvent] = []
        for line in complete.split(b"\n"):
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    batch.append((event, data[0] if len(data) == 1 else b"\n".join(data)))
                data, event, size = [], None, 0
            elif line.startswith(b"data:"):
                data.append(_value(line, 5))
                size += len(line)
                if size > max_event_bytes:
                    raise _too_large(max_event_bytes, pending, data)
            elif line.startswith(b"event:"):
                event = _value(line, 6)
        if size + len(pending) > max_event_bytes:
            raise _too_large(max_event_bytes, pending, data)
        if batch:
            yield batch
    if pending.startswith(b"data:"):
        data.append(_value(bytes(pending).rstrip(b"\r\n"), 5))
    if data and _whole(joined := b"\n".join(data)):
        yield [(event, joined)]


async def iter_sse_events(
    chunks: AsyncIterable[bytes], max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> AsyncIterator[SSEEvent]:
    """Each event that carries data, one at a time."""
    async for batch in iter_sse_batches(chunks, max_event_bytes):
        for event in batch:
            yield event
