"""The console in a real headless Chromium against a live gateway process with mock channels: sign in and
out, create a token and read its key once, call the gateway with that key through the OpenAI SDK, find
the calls in the usage table and on the token's page, rotate the key (the old one is refused), edit, top
up, disable and delete a token. Each page is photographed into the screenshots folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.console.browser import expect, read_key, records_of, sdk, shot
from tests.gateway_process import ADMIN_TOKEN, GatewayProcess


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

    page.goto(f"{gateway.url}/console?range=24h")  # and among the overview's top tokens of the day
    row = page.get_by_test_id("top-tokens").locator(
        "tbody tr", has=page.get_by_role("link", name="console-demo")
    )
    expect(row).to_have_count(1)
    assert [c.strip() for c in row.locator("td").all_inner_texts()[1:4]] == ["3", "6", "0"]
    assert row.locator("td:last-child span").get_attribute("data-value") == str(sum(costs))

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
