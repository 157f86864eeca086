"""What an HTTP/1.1 upstream answers, as the lean client (`http1.py`) reads it: the errors it raises, the
answer, its headers, and bodies without their content encoding."""

from __future__ import annotations

import zlib
from typing import NamedTuple


class ConnectFailed(ConnectionError):
    """No connection to the upstream (refused, unreachable, name not found, TLS handshake failed)."""


class ConnectTimeout(TimeoutError):
    """Connecting took longer than allowed: the request was never sent."""


class AnswerTimeout(TimeoutError):
    """The request was sent; the whole answer did not come in time."""


class Disconnected(ConnectionError):
    """The connection ended before the answer did."""


class Malformed(ValueError):
    """Not an HTTP/1.x answer, a head over `HEAD_LIMIT`, or a content encoding that cannot be read."""


class TooLarge(ValueError):
    """The body is larger than the caller's `max_bytes`."""


class Answer(NamedTuple):
    status: int
    headers: list[tuple[str, str]]  # as received, names lower-cased
    body: bytes


def header(headers: list[tuple[str, str]], name: str) -> str:
    return next((value for key, value in headers if key == name), "")


def content_type(headers: list[tuple[str, str]]) -> str:
    """The media type, without parameters, lower-cased (as aiohttp's `content_type`)."""
    return header(headers, "content-type").partition(";")[0].strip().lower() or "application/octet-stream"


def is_event_stream(headers: list[tuple[str, str]]) -> bool:
    return content_type(headers) == "text/event-stream"


def inflater(encoding: str) -> zlib._Decompress | None:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(47)
    if encoding == "deflate":
        return zlib.decompressobj(15)  # zlib-wrapped, as RFC 9110 says (raw deflate is read in `_decoded`)
    raise Malformed(f"the answer's content encoding {encoding[:40]!r} is not supported")


def decoded(headers: list[tuple[str, str]], body: bytes, limit: int) -> bytes:
    """The body without its content encoding. The request asks for none (`Accept-Encoding: identity`); gzip
    and deflate are read anyway, bounded by `limit`, as some upstreams compress regardless."""
    encoding = header(headers, "content-encoding").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise Malformed(f"the answer's content encoding {encoding[:40]!r} is not supported")
    wbits = 47 if encoding != "deflate" else 15  # 47: a gzip or zlib header; deflate: zlib, else raw
    for bits in (wbits, -15) if encoding == "deflate" else (wbits,):
        inflate = zlib.decompressobj(bits)
        try:
            out = inflate.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit or inflate.unconsumed_tail:
            raise TooLarge(f"the answer is larger than {limit} bytes")
        return out
    raise Malformed(f"the answer's {encoding} body does not decompress")
