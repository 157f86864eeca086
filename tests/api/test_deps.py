"""Reading the request body under its size limit, whatever the Content-Length header says."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from gateway.api.deps import read_body
from gateway.errors import RequestTooLarge


def request(body: bytes, content_length: str | None) -> Request:
    headers = [(b"content-length", content_length.encode("latin-1"))] if content_length is not None else []
    parts = [body]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": parts.pop(0) if parts else b"", "more_body": False}

    return Request({"type": "http", "method": "POST", "headers": headers}, receive)


@pytest.mark.parametrize("length", ["\xb2", "1\xb2", "", "-1", " 5"])
async def test_a_content_length_that_is_not_a_number_does_not_crash(length: str) -> None:
    assert await read_body(request(b"hello", length), 1024) == b"hello"


async def test_a_body_over_the_limit_is_refused_by_its_header_or_its_size() -> None:
    with pytest.raises(RequestTooLarge):
        await read_body(request(b"x", str(2 * 1024 * 1024)), 1024 * 1024)
    with pytest.raises(RequestTooLarge):
        await read_body(request(b"x", "9" * 5000), 1024)  # int() refuses strings this long
    with pytest.raises(RequestTooLarge):
        await read_body(request(b"x" * 2000, None), 1024)
