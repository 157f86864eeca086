"""The gemini channel of config.example.yaml is a valid channel, and `model_defaults` is checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from gateway.settings import ChannelSettings, substitute_env

EXAMPLE = Path(__file__).resolve().parents[3] / "config.example.yaml"


def gemini_example() -> str:
    lines = EXAMPLE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#   - name: gemini-"))
    block = []
    for n, line in enumerate(lines[start:]):
        if not line.startswith("#  ") or (n and line.startswith("#   - ")):
            break
        block.append(line[2:])
    return "\n".join(block)


def test_the_example_gemini_channel_validates() -> None:
    (raw,) = yaml.safe_load(gemini_example())
    channel = ChannelSettings.model_validate(
        substitute_env(raw, {"GEMINI_KEY_1": "k1", "GEMINI_KEY_2": "k2"})
    )
    assert channel.kind == "gemini"
    assert channel.model_defaults == {"gemini-2.5-flash-image-hd": {"image_size": "4K"}}
    assert channel.upstream_model("nano-banana") == "gemini-2.5-flash-image"
    assert channel.image_size_models == ["gemini-3-pro-image-preview"]


def test_model_defaults_must_map_models_to_fields() -> None:
    base = {"name": "g", "kind": "gemini", "base_url": "https://g", "api_keys": ["k"], "models": ["m"]}
    with pytest.raises(ValidationError):
        ChannelSettings.model_validate({**base, "model_defaults": {"m": "4K"}})
