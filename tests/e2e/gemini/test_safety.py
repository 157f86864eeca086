"""Safety refusals (§3.4, §4.2): in chat, finish_reason `content_filter` with the upstream's reason; in the
Images API, a 400 `content_policy_violation`. Nothing is billed and the usage record shows no image. Also
the error mapping of §2/§6.2 as a client sees it: UNAVAILABLE fails over, INVALID_ARGUMENT is a 400."""

from __future__ import annotations

import pytest

from tests.e2e.gemini.conftest import Gateway
from tests.e2e.gemini.support import post, usage_record, user
from tests.fakes.gemini_upstream import FakeGemini, Reply, blocked, frames_of, refused, text_answer

MODEL = "gemini-2.5-flash-image"  # priced per call: a charge would show in the record
REASONS = ["IMAGE_SAFETY", "NO_IMAGE", "PROHIBITED_CONTENT"]


@pytest.mark.parametrize("reason", REASONS)
def test_chat_refusal_is_content_filter_with_the_reason_and_free(
    gateway: Gateway, fake: FakeGemini, reason: str
) -> None:
    fake.will(refused(reason, "Unable to show the generated image."))
    rid = f"chat-refused-{reason}"
    resp = post(
        gateway, "/v1/chat/completions", {"model": MODEL, "messages": user("x")}, **{"x-request-id": rid}
    )
    assert resp.status_code == 200, resp.text
    (choice,) = resp.json()["choices"]
    assert choice["finish_reason"] == "content_filter"
    assert reason in choice["message"]["refusal"] and "images" not in choice["message"]
    record = usage_record(gateway, rid)
    assert (record["image_count"], record["cost_micro_usd"], record["status"]) == (0, 0, "success")


def test_a_streamed_refusal_ends_with_content_filter_and_is_free(gateway: Gateway, fake: FakeGemini) -> None:
    fake.will(Reply(frames=frames_of(refused("IMAGE_SAFETY"))))
    with gateway.client() as client:
        chunks = list(
            client.chat.completions.create(
                model=MODEL, messages=user("x"), stream=True, extra_headers={"x-request-id": "stream-refused"}
            )
        )
    last = [c for c in chunks if c.choices][-1].choices[0]
    assert last.finish_reason == "content_filter" and "IMAGE_SAFETY" in (last.delta.refusal or "")
    record = usage_record(gateway, "stream-refused")
    assert (record["image_count"], record["cost_micro_usd"]) == (0, 0)


def test_a_text_answer_without_image_in_chat_is_a_normal_answer(gateway: Gateway, fake: FakeGemini) -> None:
    fake.will(text_answer("I would rather describe it: a cat."))
    resp = post(
        gateway,
        "/v1/chat/completions",
        {"model": MODEL, "messages": user("x")},
        **{"x-request-id": "chat-text"},
    )
    choice = resp.json()["choices"][0]
    assert (
        choice["finish_reason"] == "stop"
        and choice["message"]["content"] == "I would rather describe it: a cat."
    )
    assert usage_record(gateway, "chat-text")["cost_micro_usd"] == 28_000  # one call


def test_a_blocked_prompt_in_chat_is_a_400_content_policy_violation(
    gateway: Gateway, fake: FakeGemini
) -> None:
    """SPEC §3.4: a prompt blocked before generation (promptFeedback.blockReason) is a 400."""
    fake.will(blocked("PROHIBITED_CONTENT"))
    rid = "chat-blocked"
    resp = post(
        gateway, "/v1/chat/completions", {"model": MODEL, "messages": user("x")}, **{"x-request-id": rid}
    )
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "content_policy_violation" and "PROHIBITED_CONTENT" in error["message"]
    record = usage_record(gateway, rid)
    assert (record["image_count"], record["cost_micro_usd"]) == (0, 0)


@pytest.mark.parametrize(
    "answer",
    [refused("IMAGE_SAFETY"), refused("NO_IMAGE"), refused("PROHIBITED_CONTENT"), blocked("SAFETY"),
     text_answer("Here is a description instead.")],
    ids=["IMAGE_SAFETY", "NO_IMAGE", "PROHIBITED_CONTENT", "blockReason", "text only"],
)  # fmt: skip
def test_images_api_without_image_is_a_400_content_policy_violation_and_free(
    gateway: Gateway, fake: FakeGemini, answer: object, request: pytest.FixtureRequest
) -> None:
    fake.will(answer)
    rid = request.node.name
    body = {"model": MODEL, "prompt": "x"}
    resp = post(gateway, "/v1/images/generations", body, **{"x-request-id": rid})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "content_policy_violation"
    assert len(fake.calls) == 1  # not retried elsewhere
    record = usage_record(gateway, rid)
    assert (record["image_count"], record["cost_micro_usd"]) == (0, 0)


def test_unavailable_fails_over_to_the_next_channel(gateway: Gateway, fake: FakeGemini) -> None:
    fake.will(Reply.error("error_503_unavailable.json"))
    rid = "gemini-failover"
    resp = post(
        gateway,
        "/v1/chat/completions",
        {"model": "gemini-fo", "messages": user("x")},
        **{"x-request-id": rid},
    )
    assert resp.status_code == 200, resp.text
    attempts = usage_record(gateway, rid)["attempts"]
    assert '"gemini-down"' in attempts and '"gemini-up"' in attempts and "503" in attempts


def test_invalid_argument_is_a_400_with_the_upstream_message(gateway: Gateway, fake: FakeGemini) -> None:
    fake.will(Reply.error("error_400_invalid_argument.json"))
    resp = post(gateway, "/v1/images/generations", {"model": MODEL, "prompt": "x", "size": "7:3"})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and "unsupported aspect ratio" in error["message"]
