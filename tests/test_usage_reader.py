"""Usage read from an untrusted upstream answer: wrong types and absurd numbers never reach the record."""

import pytest

from gateway.domain import MAX_TOKENS, Usage


@pytest.mark.parametrize(
    "usage",
    [
        "x",
        5,
        [1],
        None,
        {"prompt_tokens": "9"},
        {"prompt_tokens_details": "x", "completion_tokens_details": [1]},
    ],
)
def test_wrong_types_read_as_nothing(usage: object) -> None:
    read = Usage.from_openai(usage)
    assert read is None or read == Usage()


def test_negative_and_huge_counts_are_bounded() -> None:
    read = Usage.from_openai({"prompt_tokens": -50, "completion_tokens": 2**63 + 5, "total_tokens": True})
    assert read is not None
    assert read.prompt_tokens == 0
    assert read.completion_tokens == MAX_TOKENS
    assert read.total_tokens == MAX_TOKENS
    assert 0 <= read.text_output_tokens <= MAX_TOKENS
