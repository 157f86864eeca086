"""Delivering an Images API answer whose items hold anything: never a crash, only §2 errors."""

from __future__ import annotations

import base64
import copy
from typing import Any, cast

import pytest

from gateway.errors import GatewayError
from gateway.images.fetch import ImageFetcher
from gateway.images.output import Delivery, deliver
from gateway.storage.memory import MemoryStore
from tests.images.samples import png

JUNK: list[Any] = [
    1,
    None,
    "x",
    [1],
    {},
    {"b64_json": 5},
    {"b64_json": ""},
    {"b64_json": None, "url": None},
    {"url": 5},
    {"url": ["x"]},
    {"url": {"u": 1}},
    {"b64_json": {"a": 1}, "url": 3.5},
    {"url": "data:image/png;base64,"},
    {"b64_json": base64.b64encode(png()).decode(), "revised_prompt": 7},
]


@pytest.mark.parametrize("wanted", ["url", "b64_json", None])
@pytest.mark.parametrize("item", JUNK, ids=[repr(j)[:40] for j in JUNK])
async def test_any_item_is_delivered_or_refused_with_a_gateway_error(wanted: Any, item: Any) -> None:
    how = Delivery(
        wanted=wanted,
        store=MemoryStore(),
        fetcher=cast(ImageFetcher, None),  # no item here is an http(s) URL
        upload_attempts=1,
        rehost_urls=False,
        base64_allowed=True,
    )
    try:
        await deliver([copy.deepcopy(item)], how)  # rewritten in place
    except GatewayError as exc:
        assert exc.status in (400, 502)
