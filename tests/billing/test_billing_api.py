"""Reserve and settle end to end (§6.5), through the HTTP API of the real app on a fake upstream:
the quota, the refunds, what is billed, the usage records, `/v1/me` and the dashboard endpoints."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.api.admin.usage import FIELDS
from gateway.cluster.events import TokenChanged
from tests.billing.support import (
    ADMIN,
    bearer,
    error_code,
    generate,
    me,
    new_token,
    records,
    running,
    runtime,
    settings,
    settle,
)
from tests.fakes.billing_upstream import FakeBillingUpstream
from tests.fakes.server import ThreadedServer

SEED_TOKENS = {
    "per_million_tokens": {
        "text_input": 5.00,
        "cached_text_input": 1.25,
        "image_input": 8.00,
        "image_output": 30.00,
    },
    "estimate_image_output_tokens": {"low": 272, "medium": 1056, "high": 4160},
}
PRICES: dict[str, Any] = {
    "img-call": {"per_call": 0.01},
    "img-half": {"per_call": 0.01},
    "img-refuse": {"per_call": 0.01},
    "img-fail": {"per_call": 0.01},
    "gpt-image-2": SEED_TOKENS,
    "gpt-image-nousage": SEED_TOKENS,
    "chat-tok": {"per_million_tokens": {"text_input": 0.15, "text_output": 0.60}},
    "mock-chat": {"per_million_tokens": {"text_input": 1, "text_output": 1}},
    "nano-banana": {"per_call": 0.05},
    "gemini-2.5-flash-image": {"per_call": 0.028},
}


def channel(url: str, behaviour: str, models: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": behaviour,
        "kind": "openai",
        "base_url": f"{url}/{behaviour}/v1",
        "api_keys": [f"sk-up-{behaviour}"],
        "models": models,
        "groups": ["default", "economy"],
        **extra,
    }


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeBillingUpstream, str]]:
    fake = FakeBillingUpstream()
    server = ThreadedServer(fake.app).start()
    yield fake, server.url
    server.stop()


@pytest.fixture(scope="module")
def client(
    upstream: tuple[FakeBillingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    url = upstream[1]
    config = settings(
        tmp_path_factory.mktemp("billing") / "gateway.db",
        groups={"default": {"ratio": 1.0}, "economy": {"ratio": 0.5}},
        pricing={"unpriced": "free", "models": PRICES},
        channels=[
            channel(url, "ok", ["img-call", "gpt-image-2", "chat-tok", "free-model", "nano-banana"],
                    model_map={"nano-banana": "gemini-2.5-flash-image"}),
            channel(url, "half", ["img-half"]),
            channel(url, "refuse", ["img-refuse"]),
            channel(url, "fail", ["img-fail"]),
            channel(url, "nousage", ["gpt-image-nousage"]),
            {"name": "mock", "kind": "mock", "models": ["mock-chat"], "groups": ["default", "economy"]},
        ],
    )  # fmt: skip
    with running(config) as c:
        yield c


def test_quota_for_exactly_three_images_gives_three_then_429(
    client: TestClient, upstream: tuple[FakeBillingUpstream, str]
) -> None:
    token_id, key = new_token(client, quota_usd=0.03)
    before = upstream[0].count("ok")
    for _ in range(3):
        resp = generate(client, key, "img-call")
        assert resp.status_code == 200, resp.text
        assert len(resp.json()["data"]) == 1
    refused = generate(client, key, "img-call")
    assert refused.status_code == 429
    assert error_code(refused) == "insufficient_quota"
    assert refused.json()["error"]["type"] == "insufficient_quota"
    assert upstream[0].count("ok") - before == 3  # the refused request never reached the upstream
    assert me(client, key)["remaining_usd"] == 0.0
    rows = records(client, token_id)
    charged = [(r["status"], r["cost_micro_usd"], r["unit_price_micro_usd"]) for r in rows]
    assert charged == [("success", 10_000, 10_000)] * 3
    assert all(set(r) == set(FIELDS) for r in rows)  # every §6.5 field (and the shortfall)


def test_failed_upstream_call_refunds_the_reservation(client: TestClient) -> None:
    token_id, key = new_token(client, quota_usd=0.05)
    resp = generate(client, key, "img-fail", n=3)
    assert resp.status_code == 502
    balance = me(client, key)
    assert (balance["used_usd"], balance["remaining_usd"]) == (0.0, 0.05)
    [row] = records(client, token_id)
    assert (row["status"], row["http_status"], row["cost_micro_usd"], row["image_count"]) == (
        "failed",
        502,
        0,
        0,
    )
    assert row["attempts"] and row["attempts"][0]["status"] == 500


def test_n4_that_gets_2_images_is_billed_for_2(client: TestClient) -> None:
    token_id, key = new_token(client, quota_usd=0.10)
    resp = generate(client, key, "img-half", n=4)
    assert resp.status_code == 200
    assert len(resp.json()["data"]) == 2
    assert me(client, key)["used_usd"] == 0.02  # 0.04 reserved, 0.02 given back at settlement
    [row] = records(client, token_id)
    assert (row["image_count"], row["cost_micro_usd"], row["shortfall_micro_usd"]) == (2, 20_000, 0)


def test_reservation_is_the_upper_bound_n_times_the_price(client: TestClient) -> None:
    token_id, key = new_token(client, quota_usd=0.03)
    resp = generate(client, key, "img-half", n=4)  # would deliver 2 (0.02), but 0.04 must be reservable
    assert resp.status_code == 429 and error_code(resp) == "insufficient_quota"
    assert me(client, key)["used_usd"] == 0.0
    assert records(client, token_id) == []  # refused before routing's end: metrics only, no record


def test_safety_refusal_is_billed_nothing(client: TestClient) -> None:
    token_id, key = new_token(client, quota_usd=0.05)
    resp = generate(client, key, "img-refuse")
    assert resp.status_code == 400 and error_code(resp) == "content_policy_violation"
    assert me(client, key)["used_usd"] == 0.0
    [row] = records(client, token_id)
    assert (row["status"], row["error_code"], row["cost_micro_usd"]) == (
        "failed",
        "content_policy_violation",
        0,
    )


def test_add_quota_usd_revives_an_exhausted_token(client: TestClient) -> None:
    token_id, key = new_token(client, quota_usd=0.01)
    assert generate(client, key, "img-call").status_code == 200
    assert generate(client, key, "img-call").status_code == 429
    patched = client.patch(f"/admin/tokens/{token_id}", json={"add_quota_usd": 0.02}, headers=ADMIN)
    assert patched.status_code == 200
    assert (patched.json()["quota_usd"], patched.json()["remaining_usd"]) == (0.03, 0.02)
    assert [generate(client, key, "img-call").status_code for _ in range(3)] == [200, 200, 429]


def test_a_block_of_quota_is_not_shown_as_used(client: TestClient) -> None:
    """A token with quota to spare reserves a block of 32 requests' worth with its first request (one
    statement for the next 32). The token's row counts the block until it goes back, here when an admin
    changes the token; `/v1/me` and the admin API show only what was spent."""
    token_id, key = new_token(client, quota_usd=100)
    held = runtime(client).quota.leases.held

    def shown_used() -> tuple[float, float]:
        admin = client.get(f"/admin/tokens/{token_id}", headers=ADMIN).json()["used_usd"]
        return admin, me(client, key)["used_usd"]

    assert [generate(client, key, "img-call").status_code for _ in range(3)] == [200, 200, 200]
    assert sum(r["cost_micro_usd"] for r in records(client, token_id)) == 30_000
    assert held(token_id) == 300_000  # the first request took 0.01 and a block of 32 x 0.01
    assert shown_used() == (0.03, 0.03) and me(client, key)["remaining_usd"] == 99.97
    patched = client.patch(f"/admin/tokens/{token_id}", json={"name": "renamed"}, headers=ADMIN)
    assert patched.status_code == 200 and patched.json()["used_usd"] == 0.03
    assert held(token_id) == 0 and shown_used() == (0.03, 0.03)  # the row itself says 0.03 now
    # The same when another node says it changed the token.
    assert generate(client, key, "img-call").status_code == 200
    assert held(token_id) == 320_000
    runtime(client)._on_event(TokenChanged(token_id))
    settle(client)
    assert held(token_id) == 0 and shown_used() == (0.04, 0.04)


def test_token_prices_on_usage_splits_and_group_ratio(client: TestClient) -> None:
    """Economy (ratio 0.5), gpt-image-2, n=2: 10 text tokens in, 2 × 1056 image tokens out:
    (10×5 + 2112×30) × 0.5 = (50 + 63360) × 0.5 = 31705 micro-USD."""
    token_id, key = new_token(client, quota_usd=1, group="economy")
    resp = generate(client, key, "gpt-image-2", n=2, quality="medium")
    assert resp.status_code == 200
    [row] = records(client, token_id)
    assert (row["cost_micro_usd"], row["unit_price_micro_usd"], row["usage_estimated"]) == (
        31_705,
        15_000_000,
        False,
    )
    assert (row["text_input_tokens"], row["image_output_tokens"], row["image_quality"]) == (
        10,
        2112,
        "medium",
    )
    assert me(client, key)["used_usd"] == 0.031705


def test_missing_usage_is_estimated_by_quality(client: TestClient) -> None:
    """No usage: 'a red fox' (9 bytes → 3 tokens) and 1056 tokens for a medium image: 15 + 31680."""
    token_id, key = new_token(client, quota_usd=1)
    assert generate(client, key, "gpt-image-nousage", quality="medium").status_code == 200
    [row] = records(client, token_id)
    assert (row["cost_micro_usd"], row["usage_estimated"]) == (31_695, True)


def test_chat_model_per_token(client: TestClient) -> None:
    token_id, key = new_token(client, quota_usd=1)
    body = {"model": "chat-tok", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 1000}
    resp = client.post("/v1/chat/completions", json=body, headers=bearer(key))
    assert resp.status_code == 200, resp.text
    [row] = records(client, token_id)
    assert (row["prompt_tokens"], row["completion_tokens"], row["cost_micro_usd"]) == (1000, 500, 450)


def test_streamed_chat_is_billed_on_its_usage(client: TestClient) -> None:
    token_id, key = new_token(client, quota_usd=1)
    body = {"model": "mock-chat", "messages": [{"role": "user", "content": "one two three"}], "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body, headers=bearer(key)) as resp:
        assert resp.status_code == 200
        text = "".join(resp.iter_text())
    assert text.endswith("data: [DONE]\n\n")
    [row] = records(client, token_id)
    assert row["stream"] and row["total_tokens"] > 0
    assert row["cost_micro_usd"] == row["total_tokens"]  # 1 USD per million tokens, in and out
    assert me(client, key)["used_usd"] == row["cost_micro_usd"] / 1_000_000


def test_billing_uses_the_model_name_the_client_asked_for(client: TestClient) -> None:
    token_id, key = new_token(client, quota_usd=1)
    assert generate(client, key, "nano-banana").status_code == 200
    [row] = records(client, token_id)
    assert (row["model"], row["upstream_model"]) == ("nano-banana", "gemini-2.5-flash-image")
    assert row["cost_micro_usd"] == 50_000  # the price of nano-banana, not of the upstream model


def test_unlimited_token_is_charged_without_reserving(client: TestClient) -> None:
    token_id, key = new_token(client)
    assert generate(client, key, "img-call", n=2).status_code == 200
    balance = me(client, key)
    assert (balance["quota_usd"], balance["used_usd"], balance["remaining_usd"]) == (None, 0.02, None)


def test_free_model_costs_nothing_with_one_warning_per_model(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    token_id, key = new_token(client, quota_usd=0)  # even an empty quota may use a free model
    with caplog.at_level(logging.WARNING, logger="gateway.billing"):
        for _ in range(3):
            assert generate(client, key, "free-model").status_code == 200
    warned = [r for r in caplog.records if "free-model" in r.getMessage()]
    assert len(warned) == 1
    rows = records(client, token_id)
    assert [r["cost_micro_usd"] for r in rows] == [0, 0, 0]


def test_me_and_dashboard_endpoints_match_the_records(client: TestClient) -> None:
    token_id, key = new_token(client, quota_usd=0.5)
    assert generate(client, key, "img-call", n=2).status_code == 200
    assert generate(client, key, "gpt-image-2", quality="low").status_code == 200
    assert generate(client, key, "img-fail").status_code == 502
    spent = sum(r["cost_micro_usd"] for r in records(client, token_id))
    assert spent == 20_000 + (10 * 5 + 1056 * 30)
    balance = me(client, key)
    assert balance["used_usd"] == spent / 1_000_000
    assert balance["remaining_usd"] == (500_000 - spent) / 1_000_000
    for prefix in ("/v1", ""):
        sub = client.get(f"{prefix}/dashboard/billing/subscription", headers=bearer(key)).json()
        assert (sub["object"], sub["hard_limit_usd"], sub["access_until"]) == ("billing_subscription", 0.5, 0)
        used = client.get(f"{prefix}/dashboard/billing/usage?start_date=2026-01-01&end_date=2026-12-01",
                          headers=bearer(key)).json()  # fmt: skip
        assert used["total_usage"] == pytest.approx(spent / 10_000)  # cents
        assert sub["hard_limit_usd"] - used["total_usage"] / 100 == pytest.approx(balance["remaining_usd"])
    _, unlimited = new_token(client)
    sub = client.get("/v1/dashboard/billing/subscription", headers=bearer(unlimited)).json()
    assert sub["hard_limit_usd"] == 100_000_000
    assert client.get("/v1/dashboard/billing/usage").status_code == 401


@pytest.fixture(scope="module")
def reject_client(
    upstream: tuple[FakeBillingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    config = settings(
        tmp_path_factory.mktemp("billing-reject") / "gateway.db",
        pricing={"unpriced": "reject", "models": {"img-call": {"per_call": 0.01}}},
        channels=[channel(upstream[1], "ok", ["img-call", "no-price"], groups=["default"])],
    )
    with running(config) as c:
        yield c


def test_unpriced_reject_is_503_before_any_upstream_call(
    reject_client: TestClient, upstream: tuple[FakeBillingUpstream, str]
) -> None:
    token_id, key = new_token(reject_client)
    before = upstream[0].count()
    resp = generate(reject_client, key, "no-price")
    assert resp.status_code == 503 and error_code(resp) == "model_price_not_set"
    chat = reject_client.post(
        "/v1/chat/completions", json={"model": "no-price", "messages": [{"role": "user", "content": "x"}]},
        headers=bearer(key),
    )  # fmt: skip
    assert chat.status_code == 503 and error_code(chat) == "model_price_not_set"
    assert upstream[0].count() == before
    assert generate(reject_client, key, "img-call").status_code == 200
    assert [r["model"] for r in records(reject_client, token_id)] == ["img-call"]


def test_streamed_chat_without_quota_is_a_plain_429(client: TestClient) -> None:
    token_id, key = new_token(client, quota_usd=0)
    body = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    resp = client.post("/v1/chat/completions", json=body, headers=bearer(key))
    assert resp.status_code == 429 and error_code(resp) == "insufficient_quota"
    assert records(client, token_id) == []
