"""The `pricing` section of the config (§6.4): it loads, and a bad price stops the start with its path."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.settings import ConfigError, load_settings

SEEDS = """
pricing:
  unpriced: reject
  models:
    gemini-2.5-flash-image: {per_call: 0.028}
    gpt-image-2:
      per_million_tokens: {text_input: 5.00, cached_text_input: 1.25, image_input: 8.00, image_output: 30.00}
      estimate_image_output_tokens: {low: 272, medium: 1056, high: 4160}
    dall-e-3:
      per_image:
        {"1024X1024": {standard: 0.04, HD: 0.08}, "1792x1024": {standard: 0.08, hd: 0.12}, default: 0.04}
    gpt-4o-mini: {per_million_tokens: {text_input: 0.15, text_output: 0.60}}
"""


def load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_settings(path)


def test_a_config_holding_the_seed_prices_starts(tmp_path: Path) -> None:
    pricing = load(tmp_path, SEEDS).pricing
    assert pricing.unpriced == "reject"
    assert pricing.models["gemini-2.5-flash-image"].per_call == Decimal("0.028")  # exact, never a float
    tokens = pricing.models["gpt-image-2"].per_million_tokens
    assert (tokens.cached_text_input, tokens.image_output, tokens.text_output) == (
        Decimal("1.25"),
        Decimal("30"),
        Decimal(0),
    )
    assert pricing.models["dall-e-3"].per_image["1024x1024"] == {
        "standard": Decimal("0.04"),
        "hd": Decimal("0.08"),
    }


def test_defaults_serve_everything_free(tmp_path: Path) -> None:
    pricing = load(tmp_path, "{}").pricing
    assert (pricing.unpriced, pricing.models, pricing.estimate_output_tokens) == ("free", {}, 4096)


def test_env_overlay_sets_unpriced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PRICING__UNPRICED", "reject")
    assert load(tmp_path, "{}").pricing.unpriced == "reject"


@pytest.mark.parametrize(
    ("models", "path", "reason"),
    [
        ({"m": {"per_call": -1}}, "pricing.models.m.per_call", "greater than or equal to 0"),
        ({"m": {"per_call": "nan"}}, "pricing.models.m.per_call", "finite"),
        ({"m": {"per_call": "cheap"}}, "pricing.models.m.per_call", "decimal"),
        ({"m": {"per_call": 1, "per_image": {"default": 1}}}, "pricing.models.m", "exactly one"),
        ({"m": {}}, "pricing.models.m", "exactly one"),
        ({"m": {"per_image": {"1024x1024": 1}}}, "pricing.models.m.per_image", "'default'"),
        ({"m": {"per_image": {"1024x1024": {}, "default": 1}}}, "pricing.models.m.per_image", "at least one"),
        (
            {"m": {"per_million_tokens": {"text_inpt": 1}}},
            "pricing.models.m.per_million_tokens.text_inpt",
            "Extra",
        ),
        (
            {"m": {"per_million_tokens": {"text_input": 1}, "estimate_image_output_tokens": {"low": 1}}},
            "pricing.models.m.estimate_image_output_tokens.medium",
            "required",
        ),
        ({"m": {"per_call": 1, "price": 2}}, "pricing.models.m.price", "Extra"),
    ],
)
def test_bad_price_fails_with_the_key_path(
    tmp_path: Path, models: dict[str, Any], path: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, yaml.safe_dump({"pricing": {"models": models}}))
    assert f"config error at {path}" in str(exc.value)
    assert reason in str(exc.value)


def test_bad_unpriced_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config error at pricing.unpriced"):
        load(tmp_path, "pricing: {unpriced: maybe}")
