"""The cheap check of a chat body (`plain_request`) never accepts what the model refuses, and reads the
same fields; whatever it is unsure of goes to the model (and so gets the model's §2 errors)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.api.schemas.chat import ChatCompletionRequest, plain_request

MSG = [{"role": "user", "content": "hi"}]
BODIES: list[dict[str, Any]] = [
    {"model": "m", "messages": MSG},
    {"model": "m", "messages": MSG, "stream": True},
    {"model": "m", "messages": MSG, "stream": False, "stream_options": {"include_usage": True}},
    {"model": "m", "messages": MSG, "stream": True, "stream_options": {"include_usage": None}},
    {"model": "m", "messages": MSG, "stream": None, "stream_options": None, "group": None},
    {"model": "m", "messages": MSG, "group": "vip", "user": "u1", "seed": 3, "metadata": {"a": 1}},
    {"model": "m", "messages": [{"role": "system", "content": None}, {"role": "user", "name": "x"}]},
    # refused by the model
    {"model": "", "messages": MSG},
    {"model": 3, "messages": MSG},
    {"messages": MSG},
    {"model": "m", "messages": []},
    {"model": "m", "messages": "hi"},
    {"model": "m", "messages": [{"content": "hi"}]},
    {"model": "m", "messages": [{"role": 1, "content": "hi"}]},
    {"model": "m", "messages": [{"role": "user", "content": 5}]},
    {"model": "m", "messages": ["hi"]},
    {"model": "m", "messages": MSG, "stream": "true"},
    {"model": "m", "messages": MSG, "stream": 1},
    {"model": "m", "messages": MSG, "stream_options": {"include_usage": "yes"}},
    {"model": "m", "messages": MSG, "stream_options": []},
    {"model": "m", "messages": MSG, "group": 7},
    {"model": "m", "messages": MSG, "n": 0},
    {"model": "m", "messages": MSG, "temperature": "1"},
    # accepted by the model, left to it by the cheap check
    {"model": "m", "messages": MSG, "n": 2, "temperature": 0.5},
    {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
]


@pytest.mark.parametrize("body", BODIES)
def test_plain_request_agrees_with_the_model(body: dict[str, Any]) -> None:
    plain = plain_request(body)
    try:
        parsed = ChatCompletionRequest.model_validate(body)
    except ValidationError:
        assert plain is None
        return
    if plain is not None:
        options = parsed.stream_options
        include_usage = bool(options and options.include_usage)
        assert plain == (parsed.model, parsed.group, bool(parsed.stream), include_usage)


def test_the_plain_bodies_of_clients_skip_the_model() -> None:
    assert sum(plain_request(body) is not None for body in BODIES) == 7
