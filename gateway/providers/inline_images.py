"""Base64 images decoded straight from an upstream's answer buffer, with as few copies as possible (§5.4).

A 20 MB image is 27 MB of base64 inside the JSON. Parsing the whole document would hold the raw body,
the parser's copy of the string and the decoded bytes at once. Instead each `"<key>": "…"` value is
decoded from the body buffer, and only the small rest of the document goes through the JSON parser,
with each value replaced by its index in the returned list.

The key must follow `{` or `,` (whitespace allowed): inside a JSON string every `"` is escaped, so
that sequence only occurs where the key really is an object key. Callers still check that every
value they split out was found where they expected an image, and parse the body as usual otherwise.
"""

from __future__ import annotations

import binascii
import functools
import re


@functools.cache
def _key_pattern(key: bytes) -> re.Pattern[bytes]:
    return re.compile(rb'[{,]\s*"' + re.escape(key) + rb'"\s*:\s*"')


def split_base64(raw: bytes | bytearray, key: bytes) -> tuple[bytes, list[bytes]] | None:
    """The document with each string value of `key` replaced by its index, and the decoded values.

    None when there is no such value, or one holds a JSON escape or is not clean base64: then the
    caller parses the document as usual.
    """
    pattern = _key_pattern(key)
    parts: list[bytes] = []
    images: list[bytes] = []
    view = memoryview(raw)
    pos = 0
    try:
        while (match := pattern.search(raw, pos)) is not None:
            start = match.end()
            end = raw.find(b'"', start)
            if end < 0 or raw.find(b"\\", start, end) >= 0:
                return None
            try:
                images.append(binascii.a2b_base64(view[start:end], strict_mode=True))
            except binascii.Error:
                return None
            parts += (bytes(view[pos:start]), str(len(images) - 1).encode())
            pos = end
        if not images:
            return None
        parts.append(bytes(view[pos:]))
    finally:
        view.release()
    return b"".join(parts), images


def index_of(value: object, count: int) -> int | None:
    """The image index a split-out value was replaced by, or None when `value` is not one."""
    # ASCII decimals only: "²".isdigit() is true, and int("²") raises.
    if isinstance(value, str) and value.isascii() and value.isdecimal() and int(value) < count:
        return int(value)
    return None
