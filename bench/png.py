"""A valid PNG of an exact byte size, for the images benchmark: random pixels that no encoder can shrink.

8-bit greyscale rows of random bytes, each with filter byte 0, in zlib "stored" (uncompressed) deflate
blocks, so the file size follows from the pixel count alone; a `tEXt` chunk pads the last few bytes.
"""

from __future__ import annotations

import math
import os
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_STORED_BLOCK = 65_535  # a deflate stored block holds at most this many bytes
CHUNK_OVERHEAD = 12  # length (4) + type (4) + CRC (4)
ZLIB_OVERHEAD = 2 + 4  # header + Adler-32
STORED_BLOCK_HEADER = 5  # BFINAL/BTYPE byte + LEN + NLEN
PAD_KEYWORD = b"Comment\x00"
MIN_PAD = CHUNK_OVERHEAD + len(PAD_KEYWORD)  # the smallest tEXt chunk (empty text)
MIN_PNG_BYTES = 4096


def _chunk(kind: bytes, data: bytes | bytearray | memoryview) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return b"".join((struct.pack(">I", len(data)), kind, data, struct.pack(">I", crc)))


def _stored_size(raw_len: int) -> int:
    blocks = max(1, -(-raw_len // MAX_STORED_BLOCK))
    return ZLIB_OVERHEAD + blocks * STORED_BLOCK_HEADER + raw_len


def _zlib_stored(raw: bytes | bytearray) -> bytearray:
    """zlib stream of stored blocks: the size is exactly `_stored_size(len(raw))`."""
    out = bytearray(b"\x78\x01")
    view = memoryview(raw)
    for start in range(0, max(1, len(raw)), MAX_STORED_BLOCK):
        block = view[start : start + MAX_STORED_BLOCK]
        final = 1 if start + MAX_STORED_BLOCK >= len(raw) else 0
        out += struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF)
        out += block
    out += struct.pack(">I", zlib.adler32(raw))
    return out


def layout(size: int, width: int) -> tuple[int, int]:
    """(height, padding bytes) of a `width`-pixel-wide PNG of exactly `size` bytes."""
    fixed = len(PNG_SIGNATURE) + (CHUNK_OVERHEAD + 13) + CHUNK_OVERHEAD * 2  # IHDR, IDAT framing, IEND
    row = 1 + width
    height = max(1, (size - fixed) // row)
    while height > 1 and fixed + _stored_size(height * row) > size - MIN_PAD:
        height -= 1
    pad = size - fixed - _stored_size(height * row)
    return height, pad


def make_png(size: int) -> bytes:
    """A square-ish greyscale PNG of exactly `size` bytes (at least MIN_PNG_BYTES) whose IDAT is random
    data: 16 MiB gives 4096 x 4094 pixels, 1 MiB 1024 x 1022."""
    if size < MIN_PNG_BYTES:
        raise ValueError(f"size must be at least {MIN_PNG_BYTES} bytes")
    width = math.isqrt(size)
    height, pad = layout(size, width)
    row = 1 + width
    raw = bytearray(os.urandom(height * row))
    raw[0::row] = bytes(height)  # filter type 0 (None) at the start of every row
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    idat = _zlib_stored(raw)
    del raw
    text = _chunk(b"tEXt", PAD_KEYWORD + b"x" * (pad - MIN_PAD))  # pad >= MIN_PAD by layout()
    png = b"".join((PNG_SIGNATURE, _chunk(b"IHDR", ihdr), text, _chunk(b"IDAT", idat), _chunk(b"IEND", b"")))
    if len(png) != size:  # a layout bug, not a run-time condition
        raise AssertionError(f"made a PNG of {len(png)} bytes instead of {size}")
    return png
