"""Base64 images taken straight from an upstream's answer buffer, with as few copies as possible (§5.4).

A 20 MB image is 27 MB of base64 inside the JSON. Parsing the whole document would hold the raw body,
the parser's copy of the string and the decoded bytes at once. Instead each `"<key>": "…"` value is
taken from the body buffer, and only the small rest of the document goes through the JSON parser,
with each value replaced by its index in the returned list. A value is taken decoded (to be stored),
or as its base64 text, checked and left in the buffer (to go back to the client as it came).

The key must follow `{` or `,` (whitespace allowed): inside a JSON string every `"` is escaped, so
that sequence only occurs where the key really is an object key. Callers still check that every
value they split out was found where they expected an image, and parse the body as usual otherwise.
"""

from __future__ import annotations

import binascii
import functools
import re
from collections.abc import Callable
from typing import TypeVar

import pybase64

T = TypeVar("T")
_CHECK_CHARS = 1 << 20  # base64 checked per call: a multiple of 4, and a small scratch buffer
_PAD = ord("=")


@functools.cache
def _key_pattern(key: bytes) -> re.Pattern[bytes]:
    return re.compile(rb'[{,]\s*"' + re.escape(key) + rb'"\s*:\s*"')


def clean_base64(text: memoryview) -> bool:
    """Whether `text` is standard base64, padded, nothing else: safe to write into a JSON string as it is.

    Checked by decoding 1 MiB at a time into a scratch buffer that is dropped; `=` may end only the last.
    """
    size = len(text)
    try:
        for start in range(0, size, _CHECK_CHARS):
            end = start + _CHECK_CHARS
            if end < size and text[end - 1] == _PAD:
                return False
            pybase64.b64decode(text[start:end], validate=True)
    except binascii.Error:
        return False
    return True


def _decoded(text: memoryview) -> bytes | None:
    try:
        return pybase64.b64decode(text, validate=True)
    except binascii.Error:
        return None


def _checked(text: memoryview) -> memoryview | None:
    return text if clean_base64(text) else None


def _split(
    raw: bytes | bytearray, key: bytes, take: Callable[[memoryview], T | None]
) -> tuple[bytes, list[T]] | None:
    pattern = _key_pattern(key)
    parts: list[bytes] = []
    values: list[T] = []
    view = memoryview(raw)
    pos = 0
    try:
        while (match := pattern.search(raw, pos)) is not None:
            start = match.end()
            end = raw.find(b'"', start)
            # A JSON escape (`\"` would end the value early) is no base64 character: `take` refuses it.
            value = take(view[start:end]) if end >= 0 else None
            if value is None:
                return None
            values.append(value)
            parts += (bytes(view[pos:start]), str(len(values) - 1).encode())
            pos = end
        if not values:
            return None
        parts.append(bytes(view[pos:]))
    finally:
        view.release()  # the views taken stay valid: they hold the buffer, not this view
    return b"".join(parts), values


def split_base64(raw: bytes | bytearray, key: bytes) -> tuple[bytes, list[bytes]] | None:
    """The document with each string value of `key` replaced by its index, and the decoded values.

    None when there is no such value, or one holds a JSON escape or is not clean base64: then the
    caller parses the document as usual.
    """
    return _split(raw, key, _decoded)


def split_base64_text(raw: bytes | bytearray, key: bytes) -> tuple[bytes, list[memoryview]] | None:
    """As `split_base64`, but each value stays base64: a view of `raw` (which it keeps alive), checked
    to be clean base64 (`clean_base64`), for an image that goes back to the client as it came."""
    return _split(raw, key, _checked)


def index_of(value: object, count: int) -> int | None:
    """The image index a split-out value was replaced by, or None when `value` is not one."""
    # ASCII decimals only: "²".isdigit() is true, and int("²") raises.
    if isinstance(value, str) and value.isascii() and value.isdecimal() and int(value) < count:
        return int(value)
    return None
