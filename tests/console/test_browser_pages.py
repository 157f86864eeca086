"""The console's overview, channels and usage pages in a real headless Chromium against a live gateway:
the overview's numbers and charts equal the usage summary API's for each range, a channel switched off
changes state and a bad config reload says why, the usage table pages by cursor, and every control is
labelled and reachable from the keyboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from tests.console.browser import expect, records_of, sdk, shot
from tests.gateway_process import GatewayProcess

RANGES = {
    "overview-hours": "range=24h&bucket=hour",
    "overview": "range=7d&bucket=day",
    "overview-week-hours": "range=7d&bucket=hour",
    "overview-month": "range=30d",
}
METRICS = ("requests", "images", "cost_micro_usd", "errors")


def count(text: str) -> int:
    return int(text.replace(",", "").strip())


def shown_buckets(page: Any) -> dict[str, tuple[int, int]]:
    """The requests chart's own table: bucket -> (succeeded, failed), for buckets with any request."""
    rows = page.locator('figure[data-chart="requests"] details tbody tr')
    out = {}
    for i in range(rows.count()):
        key, ok, failed = rows.nth(i).locator("td").all_text_contents()
        if count(ok) or count(failed):
            out[key] = (count(ok), count(failed))
    return out


def live_traffic(gateway: GatewayProcess) -> None:
    """A success and a failure through the gateway, on top of the seeded week."""
    created = gateway.admin("POST", "/admin/tokens", json={"name": "overview-live"}).json()
    with sdk(gateway, created["key"]) as client:
        client.images.generate(model="dall-e-3", prompt="a lighthouse", size="1024x1024", quality="hd")
        with pytest.raises(openai.APIStatusError):
            client.images.generate(model="flaky-image", prompt="a storm")
    assert len(records_of(gateway, created["id"], 2)) == 2


def test_the_overviews_numbers_equal_the_usage_summary_api(
    page: Any, gateway: GatewayProcess, shots: Path
) -> None:
    live_traffic(gateway)
    for name, query in RANGES.items():
        page.goto(f"{gateway.url}/console?{query}")
        totals = page.get_by_test_id("totals")
        expect(totals).to_be_visible()
        span = {"from": totals.get_attribute("data-from"), "to": totals.get_attribute("data-to")}
        shown = {m: int(totals.locator(f'[data-metric="{m}"]').get_attribute("data-value")) for m in METRICS}
        # grouped another way than the page's own call, so the page's arithmetic is checked too
        api = gateway.admin("GET", "/admin/usage/summary", params={"group_by": "model", **span}).json()
        assert shown == {m: api["total"][m] for m in METRICS}, name
        assert shown["requests"] > 0 and shown["errors"] > 0
        text = totals.locator('[data-metric="requests"] .value').inner_text()
        assert count(text) == shown["requests"]
        for chart, metric in (("requests", "requests"), ("images", "images"), ("spend", "cost_micro_usd")):
            drawn = page.locator(f'figure[data-chart="{chart}"]').get_attribute("data-total")
            assert int(drawn) == shown[metric], (name, chart)
        for measure, metric in (("requests", "requests"), ("images", "images"), ("spend", "cost_micro_usd")):
            page.get_by_label("By model and group, show").select_option(measure)
            for chart in ("by-model", "by-group"):
                drawn = page.locator(f'figure[data-chart="{chart}"]')
                expect(drawn).to_have_attribute("data-total", str(shown[metric]))
                expect(drawn.locator("figcaption")).to_contain_text(" by ")
        bucket = "hour" if "hour" in query else "day"
        per_bucket = gateway.admin("GET", "/admin/usage/summary", params={"group_by": bucket, **span}).json()
        assert shown_buckets(page) == {
            r["key"]: (r["requests"] - r["errors"], r["errors"]) for r in per_bucket["data"]
        }, name
        by_token = gateway.admin("GET", "/admin/usage/summary", params={"group_by": "token", **span}).json()
        top = sorted(by_token["data"], key=lambda r: -r["cost_micro_usd"])[:10]
        cells = page.get_by_test_id("top-tokens").locator("tbody tr td:last-child span")
        spends = [int(cells.nth(i).get_attribute("data-value")) for i in range(cells.count())]
        assert spends == [r["cost_micro_usd"] for r in top], name
        shot(page, shots, name)


def test_a_channel_switched_off_changes_state_and_a_bad_reload_says_why(
    page: Any, gateway: GatewayProcess, shots: Path
) -> None:
    page.goto(f"{gateway.url}/console/channels")
    card = page.locator('section[data-channel="standby"]')
    state = card.get_by_test_id("channel-state").locator(".badge")
    expect(state).to_have_attribute("data-state", "enabled")
    card.get_by_role("button", name="Disable").click()
    page.get_by_role("dialog").get_by_role("button", name="Disable").click()
    expect(state).to_have_attribute("data-state", "disabled")
    expect(state).to_have_text("disabled")
    view = gateway.admin("GET", "/admin/channels/standby").json()
    assert (view["enabled"], view["disabled_by"]) == (False, "admin")
    created = gateway.admin("POST", "/admin/tokens", json={"name": "standby-user"}).json()
    with sdk(gateway, created["key"]) as client, pytest.raises(openai.APIStatusError) as refused:
        client.images.generate(model="standby-image", prompt="nobody serves this now")
    assert refused.value.status_code == 503
    card.get_by_role("button", name="Enable").click()
    expect(state).to_have_attribute("data-state", "enabled")
    assert gateway.admin("GET", "/admin/channels/standby").json()["enabled"] is True

    with sdk(gateway, created["key"]) as client:  # failures in a row rest the flaky channel's key
        for _ in range(3):
            with pytest.raises(openai.APIStatusError):
                client.images.generate(model="flaky-image", prompt="fails upstream")
            if gateway.admin("GET", "/admin/channels/flaky").json()["keys"][0]["state"] == "cooling_down":
                break
    page.get_by_role("button", name="Refresh").click()
    resting = page.locator('section[data-channel="flaky"] [data-state="cooling_down"]')
    expect(resting).to_contain_text("cooling down until")

    original = gateway.config_path.read_text()
    notice = page.get_by_test_id("reload-result")
    try:
        gateway.config_path.write_text(original.replace("kind: mock", "kind: nonsense", 1))
        page.get_by_role("button", name="Reload config").click()
        expect(notice).to_contain_text("The config file was not reloaded")
        expect(notice).to_contain_text("channels.0")
        expect(notice).to_have_attribute("role", "alert")
        shot(page, shots, "channels")
    finally:
        gateway.config_path.write_text(original)
    page.get_by_role("button", name="Reload config").click()
    expect(notice).to_contain_text("Config reloaded: 4 channels.")


UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button, svg[role=img]')]
  .filter((el) => !((el.labels && el.labels.length) || el.getAttribute('aria-label')
                    || el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 80))"""


def test_pages_have_labelled_controls_and_work_from_the_keyboard(
    page: Any, gateway: GatewayProcess, shots: Path
) -> None:
    for path in ("/console", "/console/tokens", "/console/usage", "/console/channels"):
        page.goto(f"{gateway.url}{path}")
        expect(page.locator("#view .card").first).to_be_visible()
        assert page.evaluate(UNLABELLED) == [], path
        assert page.locator("nav a[aria-current=page]").count() == 1
    shot(page, shots, "channels-list")
    page.goto(f"{gateway.url}/console/tokens")
    expect(page.get_by_test_id("tokens")).to_be_visible()
    shot(page, shots, "tokens")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_role("button", name="New token").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Name")).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    page.get_by_label("Search").fill("studio")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("tokens").locator("tbody tr")).to_have_count(1)
    assert "q=studio" in page.url
    page.goto(f"{gateway.url}/console/usage")
    expect(page.get_by_test_id("records")).to_be_visible()
    shot(page, shots, "usage", full_page=False)  # the first 50 rows would make a very tall picture

    # cursor paging, on a token only the seeded week used (no test adds records to it meanwhile)
    [studio] = gateway.admin("GET", "/admin/tokens", params={"q": "studio-app"}).json()["data"]
    page.goto(f"{gateway.url}/console/usage?token={studio['id']}")
    rows = page.get_by_test_id("records").locator("tbody tr")
    expect(rows).to_have_count(50)
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(100)
    expect(page.get_by_role("button", name="Load more")).to_be_focused()
    titles = rows.locator("td:first-child span").evaluate_all("els => els.map((e) => e.title)")
    first = gateway.admin("GET", "/admin/usage/records", params={"token": studio["id"], "limit": 50}).json()
    params = {"token": studio["id"], "limit": 50, "cursor": first["next_cursor"]}
    second = gateway.admin("GET", "/admin/usage/records", params=params).json()
    assert titles == [f"request {r['request_id']}" for r in first["data"] + second["data"]]
