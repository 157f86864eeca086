"""`gateway.domain.Usage.from_openai`: the token splits that per-million-token prices are applied to."""

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.domain import Usage

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openai"


def test_recorded_chat_completion_usage() -> None:
    body = json.loads((FIXTURES / "chat_completion.json").read_text())
    assert Usage.from_openai(body["usage"]) == Usage(
        prompt_tokens=19,
        completion_tokens=10,
        total_tokens=29,
        text_input_tokens=19,
        cached_input_tokens=0,
        image_input_tokens=0,
        text_output_tokens=10,
        image_output_tokens=0,
        reasoning_tokens=0,
    )


def test_chat_usage_with_cached_image_and_reasoning_tokens() -> None:
    usage = {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1000, "image_tokens": 85, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 120, "image_tokens": 0},
    }
    assert Usage.from_openai(usage) == Usage(
        prompt_tokens=1200,
        completion_tokens=300,
        total_tokens=1500,
        text_input_tokens=115,  # 1200 - 1000 cached - 85 image
        cached_input_tokens=1000,
        image_input_tokens=85,
        text_output_tokens=300,
        image_output_tokens=0,
        reasoning_tokens=120,
    )


def test_chat_usage_with_image_output() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 1300,
        "completion_tokens_details": {"image_tokens": 1290},
    }
    u = Usage.from_openai(usage)
    assert u is not None
    assert (u.image_output_tokens, u.text_output_tokens) == (1290, 10)
    assert u.total_tokens == 1310  # missing total: prompt + completion


def test_images_api_usage() -> None:
    usage = {
        "total_tokens": 4260,
        "input_tokens": 100,
        "output_tokens": 4160,
        "input_tokens_details": {"text_tokens": 50, "image_tokens": 50},
    }
    assert Usage.from_openai(usage) == Usage(
        prompt_tokens=100,
        completion_tokens=4160,
        total_tokens=4260,
        text_input_tokens=50,
        cached_input_tokens=0,
        image_input_tokens=50,
        text_output_tokens=0,  # the Images API's output tokens are image tokens
        image_output_tokens=4160,
        reasoning_tokens=0,
    )


def test_images_api_usage_with_output_details() -> None:
    usage = {
        "input_tokens": 300,
        "output_tokens": 1100,
        "input_tokens_details": {"text_tokens": 100, "image_tokens": 200},
        "output_tokens_details": {"text_tokens": 44, "image_tokens": 1056},
    }
    u = Usage.from_openai(usage)
    assert u is not None
    assert (u.text_input_tokens, u.image_input_tokens, u.cached_input_tokens) == (100, 200, 0)
    assert (u.text_output_tokens, u.image_output_tokens) == (44, 1056)
    assert u.total_tokens == 1400


def test_text_tokens_never_negative() -> None:
    u = Usage.from_openai({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 30}})
    assert u is not None and u.text_input_tokens == 0


@pytest.mark.parametrize("value", [None, "12", 12, [], ["x"]])
def test_not_a_usage_object(value: Any) -> None:
    assert Usage.from_openai(value) is None


def test_bad_field_types_count_as_zero() -> None:
    u = Usage.from_openai(
        {
            "prompt_tokens": "7",
            "completion_tokens": True,
            "total_tokens": None,
            "prompt_tokens_details": "nope",
            "completion_tokens_details": [1],
        }
    )
    assert u == Usage()


def test_empty_details_objects() -> None:
    u = Usage.from_openai({"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": None})
    assert u == Usage(
        prompt_tokens=5, completion_tokens=2, total_tokens=7, text_input_tokens=5, text_output_tokens=2
    )
