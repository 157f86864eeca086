"""Helpers for the Gemini end-to-end tests: stored images, markdown URLs, raw HTTP, usage records."""

from __future__ import annotations

import base64
import re
from typing import Any

import httpx2 as httpx

from gateway.providers.mock import render_png
from tests.e2e.gemini.conftest import Gateway
from tests.e2e.images.support import usage_record as _usage_record
from tests.images.samples import make_image

MARKDOWN = re.compile(r"!\[image\]\(([^)\s]+)\)")
JPEG = make_image("JPEG", (12, 8))


def png(seed: str) -> bytes:
    return render_png(seed, 8)


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def markdown_urls(content: str | None) -> list[str]:
    return MARKDOWN.findall(content or "")


def stored(gw: Gateway, url: str) -> bytes:
    """The bytes behind a URL of the gateway's local storage."""
    assert url.startswith(f"{gw.url}/files/"), url
    resp = httpx.get(url, timeout=10)
    assert resp.status_code == 200, url
    return resp.content


def post(gw: Gateway, path: str, body: Any, token: str = "default", **headers: str) -> httpx.Response:
    sent = {"Authorization": f"Bearer {gw.tokens[token]}", **headers}
    return httpx.post(f"{gw.url}{path}", json=body, headers=sent, timeout=30)


def usage_record(gw: Gateway, request_id: str) -> dict[str, Any]:
    return _usage_record(gw.proc, request_id)


def user(*parts: Any) -> list[dict[str, Any]]:
    """One user message: a string, or text and image URL parts."""
    if len(parts) == 1 and isinstance(parts[0], str):
        return [{"role": "user", "content": parts[0]}]
    content = [
        {"type": "image_url", "image_url": {"url": p[1]}}
        if isinstance(p, tuple)
        else {"type": "text", "text": p}
        for p in parts
    ]
    return [{"role": "user", "content": content}]
