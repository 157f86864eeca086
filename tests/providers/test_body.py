"""The one read path for upstream answers: bounded, allocating only what arrived bytes justify, and leaving
nothing behind when a read fails. Memory is measured with tracemalloc (Python allocations only, exact)."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from gateway.domain import Target
from gateway.errors import UpstreamError, UpstreamTooLarge
from gateway.providers.body import read_body
from gateway.providers.openai.http import post
from gateway.settings import ChannelSettings
from tests.fakes.hostile import HostileUpstream, Scripted

MB = 1024 * 1024


@pytest.fixture(scope="module")
def upstream() -> Iterator[HostileUpstream]:
    with HostileUpstream() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(read_bufsize=2**18) as s:
        yield s


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


class Peak:
    """The most memory allocated since `start()`, over what was allocated then."""

    base = 0

    @classmethod
    def start(cls) -> None:
        tracemalloc.reset_peak()
        cls.base = tracemalloc.get_traced_memory()[0]


def peak_mb() -> float:
    return (tracemalloc.get_traced_memory()[1] - Peak.base) / MB


async def read(session: aiohttp.ClientSession, upstream: HostileUpstream, limit: int) -> bytearray:
    async with session.post(upstream.base_url("body") + "/x", json={}) as resp:
        Peak.start()
        return await read_body(resp, limit, "c")


async def test_a_whole_answer_is_read_with_one_buffer_of_its_size(
    upstream: HostileUpstream, session: aiohttp.ClientSession, traced: None
) -> None:
    body = bytes(range(256)) * (80 * 1024)  # 20 MiB
    upstream.script("body", Scripted(parts=[body[: 7 * MB], body[7 * MB :]]))
    got = await read(session, upstream, 64 * MB)
    assert got == body
    assert peak_mb() < 20 * 1.2  # the body, plus a smaller buffer while the length earned trust


async def test_an_announced_length_over_the_limit_is_refused_before_reading(
    upstream: HostileUpstream, session: aiohttp.ClientSession, traced: None
) -> None:
    upstream.script("body", Scripted(length=300 * MB, parts=[b"x" * 1000]))
    with pytest.raises(UpstreamTooLarge) as info:
        await read(session, upstream, 8 * MB)
    assert (info.value.status, info.value.code) == (502, "upstream_response_too_large")
    assert peak_mb() < 1


async def test_an_announced_length_earns_no_allocation_before_the_bytes_arrive(
    upstream: HostileUpstream, session: aiohttp.ClientSession, traced: None
) -> None:
    upstream.script("body", Scripted(length=400 * MB, fill=(b"y" * 65536, 16)))  # 1 MiB sent, then closed
    with pytest.raises(aiohttp.ClientPayloadError):
        await read(session, upstream, 512 * MB)
    assert peak_mb() < 16


@pytest.mark.parametrize("framing", ["chunked", "until close", "announced"])
async def test_a_body_over_the_limit_stops_being_read_at_the_limit(
    upstream: HostileUpstream, session: aiohttp.ClientSession, traced: None, framing: str
) -> None:
    length = "auto" if framing == "announced" else None
    upstream.script("body", Scripted(chunked=framing == "chunked", length=length, fill=(b"z" * 65536, 800)))
    with pytest.raises(UpstreamTooLarge):
        await read(session, upstream, 4 * MB)
    assert peak_mb() < 12


async def test_a_failed_read_leaves_its_buffer_to_no_one(
    upstream: HostileUpstream, session: aiohttp.ClientSession, traced: None
) -> None:
    """The error is kept (as the failover loop keeps its last error): the buffer must not be."""
    upstream.script("body", Scripted(length=6 * MB, fill=(b"w" * 65536, 80)))  # 5 MiB of 6, then closed
    channel = ChannelSettings(
        name="c", kind="openai", base_url=upstream.base_url("body"), api_keys=["k"], models=["m"]
    )
    before = tracemalloc.get_traced_memory()[0]
    with pytest.raises(UpstreamError) as info:
        await post(session, Target(channel, 0), "/x", {}, max_bytes=8 * MB)
    kept = info.value
    assert kept.code == "upstream_error" and kept.retryable
    assert kept.__context__ is None and kept.__cause__ is None
    assert (tracemalloc.get_traced_memory()[0] - before) / MB < 1
