"""The console in a real headless Chromium against a live gateway process with mock channels: sign in and
out, create a token and read its key once, call the gateway with that key through the OpenAI SDK, find
the calls in the usage table and on the token's page, rotate the key (the old one is refused), check that
the overview's numbers equal the usage summary API's, and switch a channel off and on. Each page is
photographed into the screenshots folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.gateway_process import ADMIN_TOKEN, GatewayProcess


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


def test_sign_in_refuses_a_wrong_token_and_sign_out_ends_the_session(
    browser: Any, gateway: GatewayProcess, shots: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{gateway.url}/console/tokens")
    assert page.url == f"{gateway.url}/console/login?next=/console/tokens"
    page.get_by_label("Admin token").fill("wrong-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong admin token.")
    shot(page, shots, "sign-in")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{gateway.url}/console/tokens")
    [cookie] = [c for c in context.cookies() if c["name"] == "gateway_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert cookie["expires"] > time.time() + 11 * 3600 and ADMIN_TOKEN not in cookie["value"]
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{gateway.url}/console/login")
    assert not [c for c in context.cookies() if c["name"] == "gateway_console"]
    page.goto(f"{gateway.url}/console/usage")
    assert page.url.startswith(f"{gateway.url}/console/login")
    context.close()


def create_token(page: Any, gateway: GatewayProcess, shots: Path, name: str) -> tuple[str, str]:
    page.goto(f"{gateway.url}/console/tokens")
    page.get_by_role("button", name="New token").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_label("Quota (USD)").fill("25")
    dialog.get_by_label("Requests per minute").fill("600")
    dialog.get_by_role("button", name="Create token").click()
    key = read_key(page)
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("Copied.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key
    shot(page, shots, "new-key")
    page.get_by_role("button", name="Done").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_role("link", name=name)).to_be_visible()
    assert key not in page.content()  # shown once: gone with its dialog
    page.get_by_role("link", name=name).click()
    page.wait_for_url(f"{gateway.url}/console/tokens/tok_*")
    token_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_test_id("token-facts")).to_contain_text(key[:8])
    assert key not in page.content()
    return token_id, key


def test_a_token_made_in_the_console_serves_calls_shown_in_usage_and_rotation_kills_its_old_key(
    page: Any, gateway: GatewayProcess, shots: Path
) -> None:
    token_id, key = create_token(page, gateway, shots, "console-demo")
    with sdk(gateway, key) as client:
        client.images.generate(model="gpt-image-1", prompt="a red fox", size="1024x1024", quality="medium")
        client.images.generate(
            model="gpt-image-1", prompt="a blue fox", n=2, size="1536x1024", quality="high"
        )
        client.images.generate(model="gemini-2.5-flash-image", prompt="a green fox", n=3)
    records = records_of(gateway, token_id, 3)
    assert [r["image_count"] for r in records] == [3, 2, 1]
    costs = [r["cost_micro_usd"] for r in records]
    assert costs == [3 * 39_000, 2 * 250_000, 42_000]

    page.goto(f"{gateway.url}/console/usage?token={token_id}")
    table = page.get_by_test_id("records")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(page.get_by_test_id("record-count")).to_have_attribute("data-count", "3")
    rows = table.locator("tbody tr")
    header = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    cells = [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()] for i in range(3)]
    column = {name: [row[header.index(name)] for row in cells] for name in header}
    assert column["Token"] == ["console-demo"] * 3
    assert column["Images"] == ["3", "2", "1"]
    assert column["Size"][1:] == ["1536x1024", "1024x1024"]
    assert column["Quality"][1:] == ["high", "medium"]
    assert column["Unit price"] == ["$0.039", "$0.25", "$0.042"]
    assert column["Cost"] == ["$0.117", "$0.50", "$0.042"]
    with page.expect_download() as download:
        page.get_by_test_id("csv").click()
    lines = Path(download.value.path()).read_text().strip().splitlines()
    assert len(lines) == 1 + 3 and all(token_id in line for line in lines[1:])
    shot(page, shots, "usage-filtered")

    page.goto(f"{gateway.url}/console/tokens/{token_id}")
    expect(page.get_by_test_id("token-records").locator("tbody tr")).to_have_count(3)
    spend = page.locator('figure[data-chart="token-spend"]')
    expect(spend).to_have_attribute("data-total", str(sum(costs)))
    expect(page.get_by_test_id("token-facts")).to_contain_text("$0.659")  # used: settled by the ledger
    shot(page, shots, "token")

    page.get_by_role("button", name="Rotate key").click()
    page.get_by_role("dialog").get_by_role("button", name="Rotate key").click()
    new_key = read_key(page)
    page.get_by_role("button", name="Done").click()
    assert new_key != key
    with sdk(gateway, key) as old, pytest.raises(openai.AuthenticationError):
        old.images.generate(model="gpt-image-1", prompt="after rotation")
    with sdk(gateway, new_key) as new:
        assert len(new.images.generate(model="gemini-2.5-flash-image", prompt="after rotation").data) == 1


def test_cancelling_a_confirmation_changes_nothing(page: Any, gateway: GatewayProcess) -> None:
    created = gateway.admin("POST", "/admin/tokens", json={"name": "keep-me"}).json()
    page.goto(f"{gateway.url}/console/tokens/{created['id']}")
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("dialog")).to_contain_text("Delete this token?")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert gateway.admin("GET", f"/admin/tokens/{created['id']}").status_code == 200
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.wait_for_url(f"{gateway.url}/console/tokens")
    assert gateway.admin("GET", f"/admin/tokens/{created['id']}").status_code == 404


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


def test_a_token_is_edited_topped_up_and_disabled_in_the_console(page: Any, gateway: GatewayProcess) -> None:
    created = gateway.admin("POST", "/admin/tokens", json={"name": "edit-me", "quota_usd": 10}).json()
    page.goto(f"{gateway.url}/console/tokens/{created['id']}")
    page.get_by_role("button", name="Edit").click()
    form = page.locator("form.token-form")
    expect(form.get_by_label("Name")).to_be_focused()
    form.get_by_label("Group", exact=True).fill("economy")
    form.get_by_label("Allowed groups").fill("default")
    form.get_by_label("Models").fill("gpt-image-1, dall-e-3")
    form.get_by_label("Quota (USD)").fill("12.5")
    form.get_by_label("Requests per minute").fill("30")
    form.get_by_label("Concurrent requests").fill("2")
    form.get_by_label("Expires (UTC)").fill("2031-01-02T03:04")
    form.get_by_label("Chat image field").select_option("object_url")
    form.get_by_role("button", name="Save").click()
    facts = page.get_by_test_id("token-facts")
    expect(facts).to_contain_text("gpt-image-1, dall-e-3")
    view = gateway.admin("GET", f"/admin/tokens/{created['id']}").json()
    assert {k: view[k] for k in ("group", "allowed_groups", "models", "quota_usd", "rpm_limit",
                                 "max_concurrency", "expires_at", "chat_image_field")} == {
        "group": "economy", "allowed_groups": ["default"], "models": ["gpt-image-1", "dall-e-3"],
        "quota_usd": 12.5, "rpm_limit": 30, "max_concurrency": 2, "expires_at": "2031-01-02T03:04:00+00:00",
        "chat_image_field": "object_url",
    }  # fmt: skip

    page.get_by_label("Add quota (USD)").fill("2.5")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(facts).to_contain_text("$15.00")
    assert gateway.admin("GET", f"/admin/tokens/{created['id']}").json()["quota_usd"] == 15.0

    page.get_by_role("button", name="Disable").click()
    page.get_by_role("dialog").get_by_role("button", name="Disable").click()
    expect(facts.locator("[data-state]")).to_have_attribute("data-state", "disabled")
    assert gateway.admin("GET", f"/admin/tokens/{created['id']}").json()["status"] == "disabled"
    page.get_by_role("button", name="Enable").click()
    expect(facts.locator("[data-state]")).to_have_attribute("data-state", "active")
