"""Base64 images split out of an Images API answer without parsing them as JSON text."""

from __future__ import annotations

import base64

import orjson
import pytest

from gateway.domain import Base64Image, DecodedImage, answer_json
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


def test_base64_kept_for_the_client_is_the_upstreams_text_to_the_byte() -> None:
    raw = bytearray(answer(PNG_A, PNG_B, spaced=True))
    parsed = parse_images_answer(raw, keep_base64=True)
    kept = [d["b64_json"] for d in parsed["data"]]
    assert all(isinstance(k, Base64Image) for k in kept)
    assert [bytes(k.text) for k in kept] == [base64.b64encode(PNG_A), base64.b64encode(PNG_B)]
    assert [k.data for k in kept] == [PNG_A, PNG_B]  # decoded only when asked
    sent = answer_json(parsed)
    for image in (PNG_A, PNG_B):  # each value goes out as the very bytes that came in
        assert b'"b64_json":"' + base64.b64encode(image) + b'"' in sent
    assert orjson.loads(sent)["usage"] == {"total_tokens": 3}


def test_base64_that_cannot_be_kept_as_it_came_is_parsed_as_usual() -> None:
    broken = b'{"data": [{"b64_json": "not base64!"}]}'
    assert split_images(broken, keep_base64=True) is None
    assert parse_images_answer(broken, keep_base64=True)["data"][0]["b64_json"] == "not base64!"
    escaped = b'{"data": [{"b64_json": "YWJj\\/"}]}'
    assert parse_images_answer(escaped, keep_base64=True)["data"][0]["b64_json"] == "YWJj/"
