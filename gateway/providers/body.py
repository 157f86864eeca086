"""Read an upstream answer's body: bounded, and never allocating more than the bytes that arrived justify.

An upstream may announce 200 GB and close, or send without end. The cap (`limits.max_upstream_response_mb`)
is checked against the announced length before any byte is read, and against the bytes as they arrive.
A buffer grows with the bytes that arrived: announcing a length earns no allocation by itself.
"""

from __future__ import annotations

import ctypes
from typing import cast

import aiohttp

from gateway.errors import UpstreamTooLarge

_FIRST_BYTES = 64 * 1024
# Until the announced length is trusted, a buffer is at most this many times the bytes that arrived.
_GROWTH = 8
# The announced length is trusted (allocated at once, so a large image is read without another copy)
# once a buffer of 1/_TRUST_AT of it would be needed: an intermediate buffer is then at most 1/8 of the
# final one, and an upstream that lies gets at most _GROWTH * _TRUST_AT times what it sent allocated.
_TRUST_AT = 8
# A bytearray of a given size whose bytes are left as the allocator had them: `bytearray(n)` writes n
# zeros first, one more pass over a 21 MB answer that the chunks then overwrite anyway.
_new_bytearray = ctypes.pythonapi.PyByteArray_FromStringAndSize
_new_bytearray.restype = ctypes.py_object
_new_bytearray.argtypes = (ctypes.c_char_p, ctypes.c_ssize_t)


def too_large(channel: str, limit: int) -> UpstreamTooLarge:
    return UpstreamTooLarge(
        f"channel {channel}: the upstream's answer is larger than the limit of {limit} bytes"
    )


async def read_body(response: aiohttp.ClientResponse, limit: int, channel: str) -> bytearray:
    """The whole body, at most `limit` bytes, else UpstreamTooLarge (the connection is then dropped).

    A MemoryError while reading is the same answer: too large for this process right now.
    """
    length = response.content_length
    if length is None or length <= limit:
        try:
            if length is None:
                return await _read_growing(response, limit)
            return await _read_announced(response, length)
        except (MemoryError, _OverLimit):
            pass
    response.close()
    raise too_large(channel, limit)


async def _read_announced(response: aiohttp.ClientResponse, length: int) -> bytearray:
    """Into a buffer of the announced size once enough has arrived; aiohttp never reads past it.

    Writes go through a memoryview: a bytearray slice assignment would copy each chunk first.
    `iter_chunks` hands over aiohttp's chunks as they were received: `iter_any` would first join the
    ones waiting into a new bytes, one more copy. The buffer is not zero-filled: only the bytes written
    are ever returned (it is cut to them).
    """
    buffer, view = _allocate(min(length, _FIRST_BYTES))
    filled = 0
    try:
        async for chunk, _ in response.content.iter_chunks():
            end = filled + len(chunk)
            if end > len(buffer):
                if end > length:
                    raise _OverLimit
                buffer, view = _moved(view, filled, _capacity(end, length))
            view[filled:end] = chunk
            filled = end
    except BaseException:
        view.release()
        del buffer, view  # the traceback keeps this frame alive: not the buffer too
        raise
    view.release()
    if filled < len(buffer):
        del buffer[filled:]
    return buffer


def _allocate(size: int) -> tuple[bytearray, memoryview]:
    """A buffer of `size` bytes, not zero-filled (MemoryError when there is no room)."""
    buffer = cast(bytearray, _new_bytearray(None, size))
    return buffer, memoryview(buffer)


def _capacity(needed: int, length: int) -> int:
    wanted = needed * _GROWTH
    return length if wanted * _TRUST_AT >= length else wanted


def _moved(view: memoryview, filled: int, capacity: int) -> tuple[bytearray, memoryview]:
    """A bigger buffer holding the first `filled` bytes of `view`, which is released."""
    buffer, bigger = _allocate(capacity)
    bigger[:filled] = view[:filled]
    view.release()
    return buffer, bigger


class _OverLimit(Exception):
    """More bytes arrived than the limit allows."""


async def _read_growing(response: aiohttp.ClientResponse, limit: int) -> bytearray:
    """An answer of unannounced length (chunked, or until close): the buffer grows as bytes arrive
    (realloc), up to `limit`. Chunks taken as received, as in `_read_announced`."""
    buffer = bytearray()
    try:
        async for chunk, _ in response.content.iter_chunks():
            if len(buffer) + len(chunk) > limit:
                raise _OverLimit
            buffer += chunk
    except BaseException:
        del buffer
        raise
    return buffer
