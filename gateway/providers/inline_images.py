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
_PAD, _QUOTE = ord("="), ord('"')


@functools.cache
def _key_pattern(key: bytes) -> re.Pattern[bytes]:
    return re.compile(rb'[{,]\s*"' + re.escape(key) + rb'"\s*:\s*"')


def clean_base64(text: memoryview) -> bool:
    """Whether `text` is standard base64, padded, nothing else: safe to write into a JSON string as it is.

    Checked by decoding 1 MiB at a time into a scratch buffer that is dropped; `=` may end only the last.
    """
    size = len(text)
    return all(
        _clean_piece(text[start : start + _CHECK_CHARS], last=start + _CHECK_CHARS >= size)
        for start in range(0, size, _CHECK_CHARS)
    )


def _clean_piece(text: memoryview, *, last: bool) -> bool:
    return (last or text[-1] != _PAD) and _decodes(text)


def clean_base64_string(raw: bytes | bytearray, view: memoryview, start: int) -> int:
    """Where the JSON string value starting at `start` ends (its closing `"`) when all of it is clean
    base64 (as `clean_base64` says), else -1. One pass: each 1 MiB piece is checked, and only the piece
    that fails (no `"` is base64), or the answer's last one, is searched for the quote."""
    pos, size = start, len(raw)
    while True:
        end = pos + _CHECK_CHARS
        if end >= size or not _decodes(view[pos:end]):
            quote = raw.find(b'"', pos, end)
            return quote if quote >= 0 and _clean_piece(view[pos:quote], last=True) else -1
        if raw[end - 1] == _PAD and raw[end] != _QUOTE:
            return -1
        pos = end


def _decodes(text: memoryview) -> bool:
    try:
        pybase64.b64decode(text, validate=True)
    except binascii.Error:
        return False
    return True


def _decoded(raw: bytes | bytearray, view: memoryview, start: int) -> tuple[bytes, int] | None:
    end = raw.find(b'"', start)
    if end < 0:
        return None
    try:
        return pybase64.b64decode(view[start:end], validate=True), end
    except binascii.Error:
        return None


def _checked(raw: bytes | bytearray, view: memoryview, start: int) -> tuple[memoryview, int] | None:
    end = clean_base64_string(raw, view, start)
    return (view[start:end], end) if end >= 0 else None


def _split(
    raw: bytes | bytearray,
    key: bytes,
    take: Callable[[bytes | bytearray, memoryview, int], tuple[T, int] | None],
) -> tuple[bytes, list[T]] | None:
    """`take` gives the value of the string starting at an index, and the index of its closing quote."""
    pattern = _key_pattern(key)
    parts: list[bytes] = []
    values: list[T] = []
    view = memoryview(raw)
    pos = 0
    try:
        while (match := pattern.search(raw, pos)) is not None:
            start = match.end()
            # A JSON escape (`\"` would end the value early) is no base64 character: `take` refuses it.
            taken = take(raw, view, start)
            if taken is None:
                return None
            values.append(taken[0])
            parts += (bytes(view[pos:start]), str(len(values) - 1).encode())
            pos = taken[1]
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
