"""Base64 values split out of an answer buffer: only real object keys, only clean base64."""

from __future__ import annotations

import base64

import orjson
import pytest

from gateway.providers.inline_images import (
    clean_base64,
    clean_base64_string,
    index_of,
    split_base64,
    split_base64_text,
)
from gateway.providers.mock import render_png
from gateway.providers.openai.answers import parse_images_answer

PNG = render_png("x", 8)
B64 = base64.b64encode(PNG).decode()


def test_values_of_the_key_are_decoded_and_replaced_by_their_index() -> None:
    raw = orjson.dumps({"parts": [{"inlineData": {"mimeType": "image/png", "data": B64}}, {"data": B64}]})
    split = split_base64(bytearray(raw), b"data")
    assert split is not None
    rest, images = split
    assert images == [PNG, PNG]
    parsed = orjson.loads(rest)
    assert parsed["parts"][0]["inlineData"]["data"] == "0" and parsed["parts"][1]["data"] == "1"
    assert index_of("1", 2) == 1 and index_of("2", 2) is None and index_of(1, 2) is None


def test_a_key_spelled_inside_a_string_is_not_a_key() -> None:
    # `"data": "…"` written inside a text value: its quotes are escaped, so it is not split out.
    text = 'say "data": "' + B64 + '"'
    raw = orjson.dumps({"text": text})
    assert split_base64(raw, b"data") is None
    # A key that merely ends in the name (`"\"data"`) is not the key either.
    raw = orjson.dumps({'"data': B64})
    assert split_base64(raw, b"data") is None


def test_values_that_are_not_clean_base64_leave_the_document_to_the_parser() -> None:
    assert split_base64(b'{"data": "not base64!"}', b"data") is None
    assert split_base64(b'{"data": "YWJj\\/"}', b"data") is None  # a JSON escape inside


def test_openai_answers_with_b64_json_outside_data_are_parsed_as_sent() -> None:
    raw = orjson.dumps({"data": [{"b64_json": B64}], "extra": {"b64_json": B64}})
    parsed = parse_images_answer(raw)
    assert parsed["extra"]["b64_json"] == B64  # not an index: the whole body was parsed again
    assert parsed["data"][0]["b64_json"] == B64


def test_base64_kept_as_text_is_a_view_of_the_buffer_checked_to_be_clean() -> None:
    raw = bytearray(orjson.dumps({"data": B64}))
    split = split_base64_text(raw, b"data")
    assert split is not None
    rest, texts = split
    assert orjson.loads(rest) == {"data": "0"}
    assert isinstance(texts[0], memoryview) and texts[0].obj is raw  # no copy of the base64
    assert bytes(texts[0]) == B64.encode()
    assert split_base64_text(b'{"data": "YWJj\\u0041"}', b"data") is None  # an escape: parsed as usual


CASES = [
    (b"", True),
    (b"YWJj", True),
    (b"YWI=", True),
    (b"YQ==", True),
    (b"YWJ", False),  # unpadded
    (b"YQ==YWJj", False),  # padding inside
    (b"YWJj\n", False),
    (b"YW\xc3\xa9", False),  # not ASCII
    (b"YWJj\\", False),
    (b"YWJj" * (1 << 18) + b"YQ==", True),  # past the first 1 MiB checked
    (b"YWJj" * ((1 << 18) - 1) + b"YWI=YWJj", False),  # padding that ends the first 1 MiB checked
    (b"YWJj" * ((1 << 18) - 1) + b"YWI=", True),  # padding that ends the value, at the end of 1 MiB
    (b"YWJj" * (1 << 18), True),  # the value ends where a MiB does
    (b"YWJj" * (1 << 18) + b"YW=j", False),
    (b"YWJj" * (1 << 18) + b"YWJ\\", False),  # an escape in the second MiB
]
IDS = [repr(text)[:24] + f"-{len(text)}" for text, _ in CASES]


@pytest.mark.parametrize(("text", "clean"), CASES, ids=IDS)
def test_clean_base64_is_standard_padded_base64_and_nothing_else(text: bytes, clean: bool) -> None:
    assert clean_base64(memoryview(text)) is clean


@pytest.mark.parametrize(("text", "clean"), CASES, ids=IDS)
@pytest.mark.parametrize("after", [b'"}', b'"'])
def test_a_string_value_is_checked_up_to_its_closing_quote(text: bytes, clean: bool, after: bytes) -> None:
    raw = bytearray(b'{"data": "' + text + after)
    start = len(b'{"data": "')
    with memoryview(raw) as view:
        assert clean_base64_string(raw, view, start) == (start + len(text) if clean else -1)
        assert clean_base64_string(raw[: -len(after)], view[: -len(after)], start) == -1  # no closing quote
