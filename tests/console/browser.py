"""Helpers of the browser tests: Playwright's expect, screenshots, the OpenAI SDK aimed at the gateway."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from openai import OpenAI

from tests.gateway_process import GatewayProcess


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as pw_expect

    return pw_expect(target)


def shot(page: Any, shots: Path, name: str, full_page: bool = True) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=full_page)


def sdk(gateway: GatewayProcess, key: str) -> OpenAI:
    return OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=20)


def records_of(gateway: GatewayProcess, token_id: str, count: int) -> list[dict[str, Any]]:
    """The token's usage records once the usage writer has written `count` of them."""
    deadline = time.monotonic() + 15
    while True:
        data: list[dict[str, Any]] = gateway.admin(
            "GET", "/admin/usage/records", params={"token": token_id, "limit": 100}
        ).json()["data"]
        if len(data) >= count or time.monotonic() > deadline:
            return data
        time.sleep(0.05)


def read_key(page: Any) -> str:
    box = page.get_by_test_id("new-key")
    expect(box).to_be_visible()
    key: str = box.input_value()
    assert key.startswith("sk-") and len(key) == 51
    return key
