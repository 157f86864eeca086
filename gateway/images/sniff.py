"""Recognise images by their magic bytes and read width/height from the header, without decoding.

Also decodes client-supplied base64 and `data:` URLs into bytes, once and without extra copies.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

import pybase64

from gateway.errors import InvalidImage

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_GIF_MAGICS = (b"GIF87a", b"GIF89a")
# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_WHITESPACE = b" \t\r\n\f\v"
_DATA_URL_HEADER_MAX = 256
_ACCEPTED_DATA_URL_TYPES = ("", "application/octet-stream")


@dataclass(frozen=True)
class ImageInfo:
    mime: str
    ext: str
    width: int | None
    height: int | None


Buffer = bytes | bytearray | memoryview


def _u16be(b: Buffer, i: int) -> int:
    return (b[i] << 8) | b[i + 1]


def _u16le(b: Buffer, i: int) -> int:
    return b[i] | (b[i + 1] << 8)


def _u24le(b: Buffer, i: int) -> int:
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)


def _u32be(b: Buffer, i: int) -> int:
    return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]


def _png(b: Buffer) -> ImageInfo:
    width = height = None
    # The first chunk is IHDR: length (4), type (4), width (4), height (4).
    if len(b) >= 24 and bytes(b[12:16]) == b"IHDR":
        width, height = _u32be(b, 16), _u32be(b, 20)
    return ImageInfo("image/png", "png", width, height)


def _jpeg_size(b: Buffer) -> tuple[int, int] | None:
    """Walk the marker segments up to the first SOFn; skip each segment by its length."""
    i, n = 2, len(b)
    while i + 1 < n:
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA) or i + 3 >= n:  # end of image, start of scan, or truncated
            return None
        length = _u16be(b, i + 2)
        if marker in _JPEG_SOF:
            if length < 7 or i + 8 >= n:
                return None
            # Segment: length (2), precision (1), height (2), width (2).
            return _u16be(b, i + 7), _u16be(b, i + 5)
        if length < 2:
            return None
        i += 2 + length
    return None


def _jpeg(b: Buffer) -> ImageInfo:
    size = _jpeg_size(b)
    width, height = size if size else (None, None)
    return ImageInfo("image/jpeg", "jpg", width, height)


def _webp_size(b: Buffer) -> tuple[int, int] | None:
    fourcc = bytes(b[12:16])
    if fourcc == b"VP8 " and len(b) >= 30:
        # Frame tag (3) then start code 9d 01 2a, then 14-bit width and height.
        if bytes(b[23:26]) != b"\x9d\x01\x2a":
            return None
        return _u16le(b, 26) & 0x3FFF, _u16le(b, 28) & 0x3FFF
    if fourcc == b"VP8L" and len(b) >= 25:
        if b[20] != 0x2F:
            return None
        bits = b[21] | (b[22] << 8) | (b[23] << 16) | (b[24] << 24)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if fourcc == b"VP8X" and len(b) >= 30:
        # Flags (1), reserved (3), canvas width - 1 (24-bit LE), canvas height - 1 (24-bit LE).
        return _u24le(b, 24) + 1, _u24le(b, 27) + 1
    return None


def _webp(b: Buffer) -> ImageInfo:
    size = _webp_size(b)
    width, height = size if size else (None, None)
    return ImageInfo("image/webp", "webp", width, height)


def _gif(b: Buffer) -> ImageInfo:
    width = height = None
    if len(b) >= 10:
        width, height = _u16le(b, 6), _u16le(b, 8)
    return ImageInfo("image/gif", "gif", width, height)


def sniff(data: bytes | bytearray | memoryview) -> ImageInfo | None:
    """The image type of `data` from its magic bytes, with the size when the header gives it."""
    head = bytes(data[:16])
    if head.startswith(_PNG_MAGIC):
        return _png(data)
    if head.startswith(_JPEG_MAGIC):
        return _jpeg(data)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and head[12:15] == b"VP8":
        return _webp(data)
    if head[:6] in _GIF_MAGICS:
        return _gif(data)
    return None


def require_image(data: bytes | bytearray | memoryview, what: str = "image") -> ImageInfo:
    """`sniff`, raising `InvalidImage` when `data` is not one of the accepted image types."""
    if len(data) == 0:
        raise InvalidImage(f"{what} is empty")
    info = sniff(data)
    if info is None:
        raise InvalidImage(f"{what} is not a PNG, JPEG, WEBP or GIF image")
    return info


def _clean(b64: str | bytes) -> bytes:
    """Whitespace removed and `=` padding restored: the slow path, one working copy at a time."""
    raw = b64.encode("ascii") if isinstance(b64, str) else b64
    cleaned = raw.translate(None, _WHITESPACE)
    del raw
    missing = -len(cleaned) % 4
    if missing:
        cleaned += b"=" * missing
    return cleaned


def decode_base64_image(b64: str | bytes, what: str) -> bytes:
    """Decode standard base64 strictly; whitespace and missing `=` padding are tolerated.

    The common case (clean, padded input) decodes straight from the caller's buffer; only input
    that needs cleaning is copied.
    """
    if not b64:
        raise InvalidImage(f"{what} is empty")
    # Skip the fast path when it would only fail at the very end (missing padding, trailing newline).
    if len(b64) % 4 == 0 and b64[-1:].strip():
        try:
            return pybase64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            pass
    try:
        cleaned = _clean(b64)
    except UnicodeEncodeError:
        raise InvalidImage(f"{what} is not valid base64") from None
    if not cleaned:
        raise InvalidImage(f"{what} is empty")
    try:
        return pybase64.b64decode(cleaned, validate=True)
    except binascii.Error:
        raise InvalidImage(f"{what} is not valid base64") from None


def parse_data_url(url: str, what: str) -> bytes:
    """The bytes of a `data:image/<type>;base64,<data>` URL.

    The declared type is not trusted (callers sniff the bytes); it only has to look like an image
    type, or be absent or `application/octet-stream`.
    """
    comma = url.find(",", 0, _DATA_URL_HEADER_MAX)
    if url[:5].lower() != "data:" or comma < 0:
        raise InvalidImage(f"{what} is not a valid data URL (expected data:image/<type>;base64,<data>)")
    params = url[5:comma].strip().lower().split(";")
    mime = params[0].strip()
    if "base64" not in (p.strip() for p in params[1:]):
        raise InvalidImage(f"{what} is a data URL without ;base64 encoding")
    if not (mime.startswith("image/") or mime in _ACCEPTED_DATA_URL_TYPES):
        raise InvalidImage(f"{what} is a data URL of type {mime!r}, not an image")
    return decode_base64_image(url[comma + 1 :], what)
