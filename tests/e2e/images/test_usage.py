"""§6.5: every image request that reached routing writes a usage record (read from the SQLite file)."""

from __future__ import annotations

import json

from openai import OpenAI

from tests.e2e.images.support import usage_record
from tests.fakes.openai_images import FakeOpenAIImages, make_png
from tests.gateway_process import GatewayProcess


def attempts(record: dict[str, object]) -> list[dict[str, object]]:
    raw = record["attempts"]
    value: list[dict[str, object]] = json.loads(raw) if isinstance(raw, str) else raw  # type: ignore[assignment]
    return value


def test_generation_record_counts_the_response_format_retry_as_one_attempt(
    client: OpenAI, gateway: GatewayProcess, fake: FakeOpenAIImages
) -> None:
    rid = "img-e2e-usage-generate"
    client.images.generate(
        model="gpt-image-2", prompt="two birds", n=2, size="1024x1536", quality="medium",
        response_format="url", extra_headers={"x-request-id": rid},
    )  # fmt: skip
    assert fake.count() == 2
    record = usage_record(gateway, rid)
    assert record["endpoint"] == "/v1/images/generations"
    assert record["model"] == "gpt-image-2" and record["upstream_model"] == "gpt-image-2"
    assert record["channel"] == "gptimage"
    assert record["status"] == "success" and record["http_status"] == 200 and record["error_code"] is None
    assert record["image_count"] == 2
    assert record["image_size"] == "1024x1536" and record["image_quality"] == "medium"
    assert record["stream"] == 0
    # The retry without response_format is part of the same attempt, not a failover (§4.3 step 2).
    (attempt,) = attempts(record)
    assert attempt["channel"] == "gptimage" and attempt["key_index"] == 0 and attempt["status"] == 200
    assert (record["prompt_tokens"], record["completion_tokens"], record["total_tokens"]) == (50, 272, 322)
    assert record["text_input_tokens"] == 40 and record["image_input_tokens"] == 10


def test_failover_record_lists_both_attempts(
    client: OpenAI, gateway: GatewayProcess, fake: FakeOpenAIImages
) -> None:
    rid = "img-e2e-usage-failover"
    client.images.generate(model="gpt-image-fo", prompt="x", extra_headers={"x-request-id": rid})
    record = usage_record(gateway, rid)
    assert record["channel"] == "fo-ok" and record["status"] == "success" and record["image_count"] == 1
    assert [(a["channel"], a["status"]) for a in attempts(record)] == [("fo-broken", 500), ("fo-ok", 200)]


def test_edit_record(client: OpenAI, gateway: GatewayProcess, fake: FakeOpenAIImages) -> None:
    rid = "img-e2e-usage-edit"
    client.images.edit(
        model="gpt-image-mp", image=("a.png", make_png("usage-edit"), "image/png"), prompt="p",
        extra_headers={"x-request-id": rid},
    )  # fmt: skip
    record = usage_record(gateway, rid)
    assert record["endpoint"] == "/v1/images/edits"
    assert record["channel"] == "edits-mp" and record["image_count"] == 1 and record["status"] == "success"
    assert [a["status"] for a in attempts(record)] == [200]
