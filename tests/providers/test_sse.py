import time
from collections.abc import AsyncIterator, Iterable

import pytest

from gateway.errors import UpstreamTooLarge
from gateway.providers.sse import iter_sse_batches, iter_sse_events


async def feed(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def events(chunks: Iterable[bytes]) -> list[bytes]:
    return [data async for _, data in iter_sse_events(feed(chunks))]


def bytewise(raw: bytes) -> list[bytes]:
    return [raw[i : i + 1] for i in range(len(raw))]


STREAM = (
    b": keepalive comment\n"
    b"\n"
    b'data: {"a": 1}\n'
    b"\n"
    b"event: message\n"
    b"id: 7\n"
    b"retry: 100\n"
    b'data: {"b": 2}\n'
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)
EXPECTED = [b'{"a": 1}', b'{"b": 2}', b"[DONE]"]


async def test_whole_stream_in_one_chunk() -> None:
    assert await events([STREAM]) == EXPECTED


async def test_byte_by_byte() -> None:
    assert await events(bytewise(STREAM)) == EXPECTED


@pytest.mark.parametrize("size", [2, 3, 5, 7, 11, 64])
async def test_every_chunk_boundary(size: int) -> None:
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert await events(chunks) == EXPECTED


async def test_crlf_line_endings() -> None:
    raw = STREAM.replace(b"\n", b"\r\n")
    assert await events([raw]) == EXPECTED
    assert await events(bytewise(raw)) == EXPECTED  # \r and \n arrive in separate chunks


async def test_multi_line_data_joined_with_newline() -> None:
    raw = b"data: first\ndata: second\ndata:third\n\ndata: next\n\n"
    assert await events(bytewise(raw)) == [b"first\nsecond\nthird", b"next"]


async def test_only_one_leading_space_removed() -> None:
    assert await events([b"data:   indented\n\n", b"data:\n\n"]) == [b"  indented", b""]


async def test_comments_and_other_fields_alone_make_no_event() -> None:
    assert await events([b": ping\n\n", b"event: ping\n\n", b"id: 3\n\n"]) == []


async def test_blank_lines_between_events_are_harmless() -> None:
    assert await events([b"\n\n\ndata: x\n\n\n\ndata: y\n\n"]) == [b"x", b"y"]


async def test_trailing_event_without_blank_line_kept_when_whole() -> None:
    """A stream may end without the last blank line: `[DONE]` or a whole JSON object still count."""
    assert await events([b"data: a\n\ndata: [DONE]"]) == [b"a", b"[DONE]"]
    assert await events([b"data: a\n\ndata: [DONE]\n"]) == [b"a", b"[DONE]"]
    assert await events([b'data: a\n\ndata: {"x": 1}\r']) == [b"a", b'{"x": 1}']
    assert await events(bytewise(b'data: {"one":\ndata: 2}')) == [b'{"one":\n2}']


async def test_trailing_event_cut_mid_way_is_dropped() -> None:
    """The connection closed inside an event: it is incomplete, never relayed (as the SSE spec says)."""
    assert await events([b"data: a\n\ndata: tail"]) == [b"a"]
    assert await events([b'data: a\n\ndata: {"choices": [{"delta": {"content": "x"}, "fin']) == [b"a"]
    assert await events(bytewise(b"data: one\ndata: two")) == []


async def test_empty_stream() -> None:
    assert await events([]) == []
    assert await events([b""]) == []


async def test_five_megabyte_data_line() -> None:
    payload = (b"A" * 1023 + b"=") * (5 * 1024)  # 5 MiB, like a base64 image
    raw = b"data: " + payload + b"\n\ndata: after\n\n"
    chunks = [raw[i : i + 65536] for i in range(0, len(raw), 65536)]
    started = time.perf_counter()
    out = await events(chunks)
    elapsed = time.perf_counter() - started
    assert len(out) == 2
    assert len(out[0]) == len(payload) and out[0] == payload
    assert out[1] == b"after"
    assert elapsed < 5.0


async def test_events_carry_their_names() -> None:
    raw = (
        b'event: image_generation.partial_image\ndata: {"i": 0}\n\n'
        b"data: unnamed\n\n"
        b'event: image_generation.completed\r\nid: 9\r\ndata: {"i": 1}\r\n\r\n'
        b"event: lonely\n\n"
        b"data: after-lonely\n\n"
    )
    out = [e async for e in iter_sse_events(feed(bytewise(raw)))]
    assert out == [
        (b"image_generation.partial_image", b'{"i": 0}'),
        (None, b"unnamed"),
        (b"image_generation.completed", b'{"i": 1}'),
        (None, b"after-lonely"),  # a name without data is dropped with its event
    ]


class Counted:
    """Chunks handed out one by one, counting how many the parser pulled."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = list(chunks)
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk


async def drain(source: Counted, cap: int) -> list[bytes]:
    return [data async for batch in iter_sse_batches(source, cap) for _, data in batch]


async def test_a_line_that_never_ends_is_refused_at_the_cap() -> None:
    source = Counted([b"data: {"] + [b"x" * 100] * 1000)
    with pytest.raises(UpstreamTooLarge) as info:
        await drain(source, cap=1000)
    assert info.value.code == "upstream_response_too_large"
    assert source.pulled <= 12  # stopped reading once past the cap


async def test_an_event_of_many_short_lines_is_refused_at_the_cap() -> None:
    source = Counted([b"data: " + b"z" * 94 + b"\n"] * 1000)
    with pytest.raises(UpstreamTooLarge):
        await drain(source, cap=1000)
    assert source.pulled <= 12


async def test_events_under_the_cap_pass_however_long_the_stream() -> None:
    event = b"data: " + b"z" * 900 + b"\n\n"
    source = Counted([event[:500], event[500:]] * 100)
    assert await drain(source, cap=1000) == [b"z" * 900] * 100


async def test_one_chunk_holding_a_line_over_the_cap_is_refused() -> None:
    with pytest.raises(UpstreamTooLarge):
        await drain(Counted([b"data: " + b"q" * 5000 + b"\n\n"]), cap=1000)


PLAIN = b'data: {"a": 1}\n\ndata: {"b": 2}\n\ndata: [DONE]\n\n'


async def test_a_plain_run_of_data_lines_is_one_batch() -> None:
    batches = [b async for b in iter_sse_batches(feed([PLAIN]))]
    assert batches == [[(None, b'{"a": 1}'), (None, b'{"b": 2}'), (None, b"[DONE]")]]


@pytest.mark.parametrize(
    "chunks",
    [
        [b"event: named\n", PLAIN],  # a name read before the run belongs to its first event
        [b"data: first\n", b"data: second\n\n" + PLAIN],  # an event begun in an earlier chunk
        [b'data: {"a"', b": 1}\n\n" + PLAIN],  # a line begun in an earlier chunk
        [PLAIN + b"data: cut"],
        [PLAIN.replace(b"\n\ndata: [DONE]", b"\n\n\ndata: [DONE]")],  # an extra blank line
        [PLAIN.replace(b'data: {"b"', b'data:{"b"')],
        [PLAIN.replace(b'data: {"b"', b': comment\ndata: {"b"')],
        [PLAIN.replace(b'data: {"b": 2}', b'data: {"b":\ndata: 2}')],
        [PLAIN.replace(b"\n", b"\r\n")],
    ],
)
async def test_anything_but_a_plain_run_reads_as_line_by_line(chunks: list[bytes]) -> None:
    """What the one-split path reads equals what the line by line parser reads, fed byte by byte."""
    whole = [e async for b in iter_sse_batches(feed(chunks)) for e in b]
    one_by_one = [e async for b in iter_sse_batches(feed(bytewise(b"".join(chunks)))) for e in b]
    assert whole == one_by_one
    assert (b"named", b'{"a": 1}') in whole or chunks[0] != b"event: named\n"


async def test_a_plain_run_over_the_cap_is_refused() -> None:
    with pytest.raises(UpstreamTooLarge):
        await drain(Counted([b"data: " + b"q" * 5000 + b"\n\ndata: x\n\n"]), cap=1000)
