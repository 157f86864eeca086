"""`gateway.billing.pricing` on the seeds' price sheets (§6.4): every figure below is worked out by hand.

A micro-USD figure equals Σ tokens × (USD per million tokens) for token prices, and USD × 1,000,000 for
per-call and per-image prices.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest

from gateway.billing.pricing import PriceBook, RequestFacts, image_price, request_facts, to_micro
from gateway.domain import Usage
from gateway.errors import ServiceUnavailable
from gateway.pricing_settings import ModelPrice, PricingSettings
from gateway.settings import GroupSettings

SEED_PRICES: dict[str, Any] = {
    "gemini-2.5-flash-image": {"per_call": 0.028},  # seed 001
    "gpt-image-2": {  # seed 002
        "per_million_tokens": {
            "text_input": 5.00,
            "cached_text_input": 1.25,
            "image_input": 8.00,
            "image_output": 30.00,
        },
        "estimate_image_output_tokens": {"low": 272, "medium": 1056, "high": 4160},
    },  # fmt: skip
    "dall-e-3": {
        "per_image": {
            "1024x1024": {"standard": 0.04, "hd": 0.08},
            "1792x1024": {"standard": 0.08, "hd": 0.12},
            "default": 0.04,
        }
    },
    "gpt-4o-mini": {"per_million_tokens": {"text_input": 0.15, "text_output": 0.60}},
}
GROUPS = {"default": GroupSettings(ratio=1.0), "economy": GroupSettings(ratio=0.5)}


def book(unpriced: str = "free", **extra: Any) -> PriceBook:
    pricing = PricingSettings.model_validate({"unpriced": unpriced, "models": {**SEED_PRICES, **extra}})
    return PriceBook(pricing, GROUPS)


def price(model: str, prices: PriceBook | None = None) -> ModelPrice:
    found = (prices or book()).price_for(model)
    assert found is not None
    return found


IMAGES = RequestFacts("images.generate")
CHAT = RequestFacts("chat")


def cost(
    model: str, group: str = "default", facts: RequestFacts = IMAGES, **kwargs: Any
) -> tuple[int, int, bool]:
    prices = book()
    args: dict[str, Any] = {"usage": None, "images": 0, "size": None, "quality": None, **kwargs}
    charge = prices.cost(price(model, prices), group, facts, **args)
    return charge.cost_micro_usd, charge.unit_price_micro_usd, charge.usage_estimated


# -- per call: gemini-2.5-flash-image, 0.028 per image delivered ------------------------------------


def test_per_call_is_charged_per_image_delivered() -> None:
    assert cost("gemini-2.5-flash-image", images=1) == (28_000, 28_000, False)
    assert cost("gemini-2.5-flash-image", images=2) == (56_000, 28_000, False)
    # n=4 asked, 2 delivered: billed for 2; none delivered: nothing.
    assert cost("gemini-2.5-flash-image", facts=RequestFacts("images.generate", n=4), images=2)[0] == 56_000
    assert cost("gemini-2.5-flash-image", images=0)[0] == 0


def test_per_call_chat_answer_counts_its_images_and_at_least_one_call() -> None:
    assert cost("gemini-2.5-flash-image", facts=CHAT, images=0)[0] == 28_000
    assert cost("gemini-2.5-flash-image", facts=CHAT, images=3)[0] == 84_000


def test_per_call_estimate_is_price_times_n() -> None:
    prices = book()
    model = price("gemini-2.5-flash-image", prices)
    assert prices.estimate(model, "default", RequestFacts("images.generate", n=3)) == 84_000
    assert prices.estimate(model, "economy", RequestFacts("images.generate", n=3)) == 42_000


# -- per image: dall-e-3 by size × quality, with the default entry ----------------------------------


@pytest.mark.parametrize(
    ("size", "quality", "micro"),
    [
        ("1024x1024", "standard", 40_000),
        ("1024x1024", "hd", 80_000),
        ("1792x1024", "standard", 80_000),
        ("1792x1024", "HD", 120_000),  # case does not matter
        ("1024x1792", "hd", 40_000),  # a size with no entry: `default`
        (None, None, 40_000),  # no size sent: `default`
        ("1792x1024", None, 80_000),  # no quality: the size's cheapest (the upstream's default quality)
        ("1792x1024", "vivid", 80_000),
    ],
)
def test_per_image_by_size_and_quality(size: str | None, quality: str | None, micro: int) -> None:
    assert cost("dall-e-3", images=1, size=size, quality=quality) == (micro, micro, False)
    assert cost("dall-e-3", images=2, size=size, quality=quality)[0] == 2 * micro


def test_per_image_entry_default_wins_over_cheapest() -> None:
    table = {"512x512": {"standard": Decimal("0.02"), "default": Decimal("0.03")}, "default": Decimal("0.05")}
    assert image_price(table, "512x512", None) == Decimal("0.03")
    assert image_price(table, "512x512", "standard") == Decimal("0.02")


def test_per_image_estimate_uses_size_quality_and_n() -> None:
    prices = book()
    facts = RequestFacts("images.generate", n=2, size="1024x1024", quality="hd")
    assert prices.estimate(price("dall-e-3", prices), "default", facts) == 160_000


# -- per million tokens: gpt-image-2 on the upstream's usage splits ---------------------------------


def test_gpt_image_2_hand_computed_example() -> None:
    """40 text in at $5, 10 cached text at $1.25, 500 image in at $8, 1056 image out at $30 (per million):
    40×5 + 10×1.25 + 500×8 + 1056×30 = 200 + 12.5 + 4000 + 31680 = 35892.5 micro-USD → 35893 (half-up)."""
    usage = Usage(
        prompt_tokens=550,
        completion_tokens=1056,
        total_tokens=1606,
        text_input_tokens=40,
        cached_input_tokens=10,
        image_input_tokens=500,
        image_output_tokens=1056,
    )
    assert cost("gpt-image-2", usage=usage, images=1) == (35_893, 30_000_000, False)
    # Ratio 0.5 applies before the one rounding: 17946.25 → 17946 (rounding first would give 17947).
    assert cost("gpt-image-2", "economy", usage=usage, images=1)[0] == 17_946


def test_gpt_image_2_from_the_images_api_usage_object() -> None:
    """What gpt-image answers: output tokens are image tokens; text_tokens there include the cached ones.
    Full-price text 250 - 200 = 50: 50×5 + 200×1.25 + 1000×8 + 4160×30 = 250 + 250 + 8000 + 124800."""
    usage = Usage.from_openai(
        {
            "input_tokens": 1250,
            "output_tokens": 4160,
            "total_tokens": 5410,
            "input_tokens_details": {"text_tokens": 250, "image_tokens": 1000, "cached_tokens": 200},
        }
    )
    assert cost("gpt-image-2", usage=usage, images=1)[0] == 133_300


def test_gpt_image_2_without_usage_is_estimated_by_quality() -> None:
    """No usage from the upstream: the prompt estimate (30 bytes → 10 tokens) and 1056 tokens per
    medium image: 10×5 + 2×1056×30 = 50 + 63360."""
    facts = RequestFacts("images.generate", n=2, prompt_tokens=10)
    assert cost("gpt-image-2", facts=facts, images=2, quality="medium") == (63_410, 30_000_000, True)


@pytest.mark.parametrize(("quality", "tokens"), [("low", 272), ("medium", 1056), ("high", 4160), (None, 4160),
                                                 ("auto", 4160)])  # fmt: skip
def test_gpt_image_2_estimate_by_quality(quality: str | None, tokens: int) -> None:
    prices = book()
    facts = RequestFacts("images.generate", n=2, quality=quality, prompt_tokens=10)
    assert prices.estimate(price("gpt-image-2", prices), "default", facts) == 10 * 5 + 2 * tokens * 30


# -- a chat model per token ------------------------------------------------------------------------


def test_chat_model_per_token() -> None:
    """1000 prompt tokens at $0.15 and 500 completion tokens at $0.60 per million: 150 + 300."""
    usage = Usage.from_openai({"prompt_tokens": 1000, "completion_tokens": 500})
    assert cost("gpt-4o-mini", facts=CHAT, usage=usage) == (450, 600_000, False)
    # Cached tokens without a cached price cost the text price: 600×0.15 + 400×0.15 + 500×0.60.
    cached = Usage.from_openai(
        {"prompt_tokens": 1000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 400}}
    )
    assert cost("gpt-4o-mini", facts=CHAT, usage=cached)[0] == 450


def test_chat_estimate_is_prompt_plus_max_tokens() -> None:
    prices = book()
    model = price("gpt-4o-mini", prices)
    body = {"messages": [{"role": "user", "content": "x" * 300}], "max_tokens": 200}
    facts = request_facts("chat", body)
    assert (facts.prompt_tokens, facts.max_output_tokens) == (100, 200)
    assert prices.estimate(model, "default", facts) == 135  # 100×0.15 + 200×0.60
    # Without max_tokens: pricing.estimate_output_tokens (4096): 15 + 2457.6 → 2473.
    assert prices.estimate(model, "default", request_facts("chat", {"messages": body["messages"]})) == 2473


def test_chat_estimate_with_a_model_default_output() -> None:
    prices = book(**{"tiny": {"per_million_tokens": {"text_output": 1}, "estimate_output_tokens": 10}})
    assert prices.estimate(price("tiny", prices), "default", CHAT) == 10


# -- group ratio -----------------------------------------------------------------------------------


def test_group_ratio_half() -> None:
    assert cost("gemini-2.5-flash-image", "economy", images=1) == (14_000, 14_000, False)
    assert cost("dall-e-3", "economy", images=1, size="1024x1024", quality="hd")[0] == 40_000
    usage = Usage.from_openai({"prompt_tokens": 1000, "completion_tokens": 500})
    assert cost("gpt-4o-mini", "economy", facts=CHAT, usage=usage)[0] == 225


def test_unknown_group_has_ratio_one() -> None:
    assert book().ratio("nope") == Decimal(1)


# -- rounding, unpriced models, request facts ----------------------------------------------------


@pytest.mark.parametrize(
    ("usd", "micro"), [("0.0000005", 1), ("0.0000004999", 0), ("0.0000015", 2), ("1", 1_000_000)]
)
def test_half_up_rounding(usd: str, micro: int) -> None:
    assert to_micro(Decimal(usd)) == micro


def test_billing_uses_the_requested_model_name() -> None:
    prices = book(**{"nano-banana": {"per_call": 0.05}})
    assert price("nano-banana", prices).per_call == Decimal("0.05")


def test_unpriced_reject_is_503_model_price_not_set() -> None:
    with pytest.raises(ServiceUnavailable) as exc:
        book("reject").price_for("mystery-model")
    assert (exc.value.status, exc.value.code) == (503, "model_price_not_set")


def test_unpriced_free_warns_once_per_model(caplog: pytest.LogCaptureFixture) -> None:
    prices = book("free")
    with caplog.at_level(logging.WARNING, logger="gateway.billing"):
        for _ in range(5):
            assert prices.price_for("free-a") is None
            assert prices.price_for("free-b") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "free-a" in warnings[0] and "free-b" in warnings[1]


def test_request_facts_from_images_and_multipart_fields() -> None:
    facts = request_facts(
        "images.generate", {"prompt": "猫" * 9, "n": 4, "size": "1024x1024", "quality": "hd"}
    )
    assert facts == RequestFacts("images.generate", n=4, size="1024x1024", quality="hd", prompt_tokens=9)
    form = request_facts("images.edit", {"prompt": "x", "n": "3"})
    assert (form.n, form.prompt_tokens) == (3, 1)
    odd = request_facts("images.generate", {"prompt": ["x"], "n": True, "size": 7})
    assert (odd.n, odd.size, odd.prompt_tokens) == (1, None, 0)


def test_request_facts_from_chat_parts() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "abc"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "defghi"}, {"type": "image_url", "image_url": {}}],
            },
            "junk",
        ],
        "max_completion_tokens": 50,
        "max_tokens": 9,
    }
    assert request_facts("chat", body) == RequestFacts("chat", prompt_tokens=3, max_output_tokens=50)
    # A price per call or per image does not need the prompt's size: it is not read.
    assert request_facts("chat", body, prompt=False) == RequestFacts("chat", max_output_tokens=50)
    assert request_facts("images.generate", {"prompt": "abcdef", "n": 2}, prompt=False).prompt_tokens == 0
