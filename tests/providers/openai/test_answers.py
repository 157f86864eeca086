"""Base64 images split out of an Images API answer without parsing them as JSON text."""

from __future__ import annotations

import base64

import orjson
import pytest

from gateway.domain import DecodedImage
from gateway.providers.mock import render_png
from gateway.providers.openai.answers import parse_images_answer, split_images

PNG_A, PNG_B = render_png("a", 16), render_png("b", 24)


def answer(*images: bytes, spaced: bool = False) -> bytes:
    body = {
        "created": 1,
        "data": [{"b64_json": base64.b64encode(i).decode(), "revised_prompt": "p"} for i in images],
        "usage": {"total_tokens": 3},
    }
    return orjson.dumps(body) if not spaced else orjson.dumps(body).replace(b'":', b'": ')


@pytest.mark.parametrize("spaced", [False, True])
def test_images_come_back_decoded_and_the_rest_parsed(spaced: bool) -> None:
    parsed = parse_images_answer(bytearray(answer(PNG_A, PNG_B, spaced=spaced)))
    assert [d["b64_json"] for d in parsed["data"]] == [DecodedImage(PNG_A), DecodedImage(PNG_B)]
    assert parsed["data"][0]["revised_prompt"] == "p"
    assert parsed["usage"] == {"total_tokens": 3}


def test_escaped_or_bad_values_fall_back_to_a_plain_parse() -> None:
    escaped = answer(PNG_A).replace(b"/", b"\\/")  # some encoders escape slashes
    assert split_images(escaped) is None
    assert parse_images_answer(escaped)["data"][0]["b64_json"] == base64.b64encode(PNG_A).decode()
    broken = b'{"data": [{"b64_json": "not base64!"}]}'
    assert parse_images_answer(broken)["data"][0]["b64_json"] == "not base64!"


def test_answers_without_base64_parse_as_usual() -> None:
    plain = b'{"created": 1, "data": [{"url": "https://x/y.png"}]}'
    assert split_images(plain) is None
    assert parse_images_answer(plain) == orjson.loads(plain)
