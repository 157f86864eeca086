"""Fixtures of the browser tests, shared by the whole package: one gateway process (mock channels, a week
of earlier traffic), one headless Chromium (Debian's, driven by Playwright), a signed-in browser state, and
the folder the screenshots go to (copied to docs/ when GATEWAY_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console import history
from tests.gateway_process import ADMIN_TOKEN, GatewayProcess

CHROMIUM = Path(os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"
README_SHOTS = ("overview", "tokens", "new-key", "token", "usage", "channels")
PRICING = {
    "gpt-image-1": {"per_image": {
        "1024x1024": {"low": 0.011, "medium": 0.042, "high": 0.167},
        "1536x1024": {"low": 0.016, "medium": 0.063, "high": 0.25},
        "default": 0.042,
    }},
    "gemini-2.5-flash-image": {"per_call": 0.039},
    "dall-e-3": {"per_image": {"1024x1024": {"standard": 0.04, "hd": 0.08}, "default": 0.08}},
    "flaky-image": {"per_call": 0.02},
}  # fmt: skip
CHANNELS = [
    {"name": "primary", "kind": "mock", "models": ["gpt-image-1", "dall-e-3"], "priority": 10},
    {
        "name": "economy",
        "kind": "mock",
        "models": ["gemini-2.5-flash-image"],
        "groups": ["default", "economy"],
    },
    {"name": "flaky", "kind": "mock", "models": ["flaky-image"], "mock": {"failure_rate": 1.0}},
    {"name": "standby", "kind": "mock", "models": ["gpt-image-1", "standby-image"]},
]


@pytest.fixture(scope="package")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = {
        "groups": {"default": {"ratio": 1.0}, "economy": {"ratio": 0.5}},
        "channels": CHANNELS,
        "pricing": {"unpriced": "free", "models": PRICING},
        "usage": {"flush_interval_seconds": 0.05},
    }
    proc = GatewayProcess(tmp_path_factory.mktemp("console-gw"), config)
    proc.cli("migrate")
    proc.start()
    try:
        seed(proc)
        yield proc
    finally:
        proc.stop()


def seed(proc: GatewayProcess) -> None:
    """Tokens an operator would have, and their past week of requests."""
    tokens = []
    for body in (
        {"name": "studio-app", "quota_usd": 500, "rpm_limit": 120},
        {"name": "batch-jobs", "group": "economy", "quota_usd": 200, "max_concurrency": 8},
        {"name": "mobile-beta", "quota_usd": 50, "models": ["gpt-image-1"]},
    ):
        resp = proc.admin("POST", "/admin/tokens", json=body)
        assert resp.status_code == 201, resp.text
        tokens.append((resp.json()["id"], resp.json()["group"]))
    old = proc.admin("POST", "/admin/tokens", json={"name": "old-integration", "status": "disabled"})
    assert old.status_code == 201, old.text
    url = f"sqlite+aiosqlite:///{proc.tmp}/gateway.db"
    history.insert(url, history.week_of_records(tokens, history.now()))


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run installs it)"
        if os.environ.get("GATEWAY_TEST_REQUIRE_BROWSER") == "1":  # CI: never skip them silently
            pytest.fail(reason)
        pytest.skip(reason)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        sync_api.expect.set_options(timeout=15_000)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="package")
def signed_in(browser: Any, gateway: GatewayProcess) -> dict[str, Any]:
    """A signed-in browser state (its session cookie), made once through the sign-in page."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{gateway.url}/console")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{gateway.url}/console")
    state: dict[str, Any] = context.storage_state()
    context.close()
    return state


@pytest.fixture
def page(browser: Any, signed_in: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(
        storage_state=signed_in,
        viewport={"width": 1280, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture(scope="package")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("console-screenshots")
    yield folder
    if os.environ.get("GATEWAY_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        for name in README_SHOTS:
            if (folder / f"{name}.png").exists():
                shutil.copyfile(folder / f"{name}.png", DOCS / f"{name}.png")
