"""Upstream answers are untrusted input (§2, §6.2), through the real app and a hostile upstream:
a 200 must hold a real answer or it fails over; oversize answers are refused; a stream must end
properly; 401/403 and 504 from the upstream get their own §2 answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.fakes.gateway_app import error_of, gateway_client, openai_channel, sse_events, stream_error
from tests.fakes.gateway_app import usage_record as read_record
from tests.fakes.hostile import CHAT_CHUNKS, HostileUpstream, Scripted, sse

MB = 1024 * 1024
CHAT = "/v1/chat/completions"
IMAGES = "/v1/images/generations"


@pytest.fixture(scope="module")
def upstream() -> Iterator[HostileUpstream]:
    with HostileUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    upstream: HostileUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, dict[str, str], Path]]:
    tmp = tmp_path_factory.mktemp("answers")
    ch = openai_channel
    channels = [
        ch("bad", upstream.base_url("bad"), ["fo-chat", "fo-image"], priority=10),
        ch("good", upstream.base_url("ok"), ["fo-chat", "fo-image"], priority=0),
        ch("only", upstream.base_url("only"), ["only-chat", "only-image"]),
        {**ch("keys", upstream.base_url("keys"), ["auth-chat"]), "api_keys": ["sk-a", "sk-b"]},
        ch("r401", upstream.base_url("r401"), ["revoked-401"], priority=10),
        ch("r403", upstream.base_url("r403"), ["revoked-403"], priority=10),
        ch("spare", upstream.base_url("ok"), ["revoked-401", "revoked-403"], priority=0),
    ]
    overrides = {
        "channels": channels,
        "limits": {"max_upstream_response_mb": 1},
        "retry": {"failures_to_cooldown": 1000, "max_attempts": 3},
    }
    with gateway_client(tmp, **overrides) as (client, headers):
        yield client, headers, tmp / "gateway.db"


@pytest.fixture
def client(gateway: tuple[TestClient, dict[str, str], Path]) -> TestClient:
    return gateway[0]


@pytest.fixture
def auth(gateway: tuple[TestClient, dict[str, str], Path]) -> dict[str, str]:
    return gateway[1]


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def image(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "prompt": "a cat", "response_format": "b64_json", **extra}


def before(upstream: HostileUpstream, *segments: str) -> dict[str, int]:
    return {s: upstream.count(s) for s in segments}


def calls_since(upstream: HostileUpstream, counts: dict[str, int]) -> dict[str, int]:
    return {s: upstream.count(s) - n for s, n in counts.items()}


BAD_CHAT_200 = {
    "not json": Scripted(parts=[b"<html>surprise</html>"], content_type="text/html"),
    "truncated json": Scripted(parts=[b'{"id": "x", "choices": [{"mess']),
    "an error object": Scripted(parts=[b'{"error": {"message": "overloaded", "code": "server_busy"}}']),
    "no choices": Scripted(parts=[b'{"id": "chatcmpl-1", "object": "chat.completion"}']),
    "choices not a list": Scripted(parts=[b'{"choices": "x"}']),
    "a choice not an object": Scripted(parts=[b'{"choices": [1]}']),
    "a message not an object": Scripted(parts=[b'{"choices": [{"message": "x"}]}']),
    "a json array": Scripted(parts=[b"[1, 2]"]),
}


@pytest.mark.parametrize("answer", BAD_CHAT_200.values(), ids=BAD_CHAT_200.keys())
def test_a_bad_chat_200_fails_over(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str], answer: Scripted
) -> None:
    upstream.script("bad", answer)
    counts = before(upstream, "bad", "ok")
    resp = client.post(CHAT, json=chat("fo-chat"), headers=auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"]
    assert calls_since(upstream, counts) == {"bad": 1, "ok": 1}


@pytest.mark.parametrize("answer", BAD_CHAT_200.values(), ids=BAD_CHAT_200.keys())
def test_a_bad_chat_200_on_the_only_channel_is_a_502(
    upstream: HostileUpstream,
    gateway: tuple[TestClient, dict[str, str], Path],
    answer: Scripted,
) -> None:
    client, auth, db = gateway
    upstream.script("only", answer)
    resp = client.post(CHAT, json=chat("only-chat"), headers={**auth, "x-request-id": f"bad-{id(answer)}"})
    err = error_of(resp, 502, "bad_upstream_response")
    assert err["type"] == "upstream_error"
    record = read_record(db, f"bad-{id(answer)}")
    assert (record["status"], record["http_status"]) == ("failed", 502)
    assert record["error_code"] == "bad_upstream_response"
    assert [a["status"] for a in record["attempts"]] == ["bad_upstream_response"]


def test_an_error_object_in_a_200_keeps_the_upstream_message_without_secrets(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str]
) -> None:
    message = "busy, see https://internal.example/status for sk-up-only-secret"
    upstream.script("only", Scripted(parts=[json.dumps({"error": {"message": message}}).encode()]))
    err = error_of(client.post(CHAT, json=chat("only-chat"), headers=auth), 502, "bad_upstream_response")
    assert "busy" in err["message"]
    assert "internal.example" not in err["message"] and "sk-up-only" not in err["message"]


BAD_IMAGES_200 = {
    "no data": Scripted(parts=[b'{"created": 1}']),
    "data not a list": Scripted(parts=[b'{"created": 1, "data": "x"}']),
    "an item not an object": Scripted(parts=[b'{"created": 1, "data": [1]}']),
    "b64_json not a string": Scripted(parts=[b'{"created": 1, "data": [{"b64_json": 5}]}']),
    "an item with no image": Scripted(parts=[b'{"created": 1, "data": [{"revised_prompt": "x"}]}']),
    "an error object": Scripted(parts=[b'{"error": {"message": "no"}}']),
    "empty body": Scripted(parts=[]),
}


@pytest.mark.parametrize("answer", BAD_IMAGES_200.values(), ids=BAD_IMAGES_200.keys())
@pytest.mark.parametrize("fmt", ["b64_json", "url"])
def test_a_bad_images_200_fails_over(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str], answer: Scripted, fmt: str
) -> None:
    upstream.script("bad", answer)
    counts = before(upstream, "bad", "ok")
    resp = client.post(IMAGES, json=image("fo-image", response_format=fmt), headers=auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"][0][fmt]
    assert calls_since(upstream, counts) == {"bad": 1, "ok": 1}


@pytest.mark.parametrize("answer", BAD_IMAGES_200.values(), ids=BAD_IMAGES_200.keys())
def test_a_bad_images_200_on_the_only_channel_is_a_502(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str], answer: Scripted
) -> None:
    upstream.script("only", answer)
    error_of(client.post(IMAGES, json=image("only-image"), headers=auth), 502, "bad_upstream_response")


# --- oversize answers -----------------------------------------------------------------------------

OVERSIZE = {
    "announced, then closed": Scripted(length=300 * MB, parts=[b'{"choices": [']),
    "announced and sent": Scripted(parts=[b'{"choices": ["'], fill=(b"x" * 65536, 40)),
    "chunked": Scripted(chunked=True, parts=[b'{"choices": ["'], fill=(b"x" * 65536, 40)),
    "until close": Scripted(length=None, parts=[b'{"choices": ["'], fill=(b"x" * 65536, 40)),
    "an error body": Scripted(status=500, parts=[b'{"error": "'], fill=(b"x" * 65536, 40)),
}


@pytest.mark.parametrize("answer", OVERSIZE.values(), ids=OVERSIZE.keys())
def test_an_oversize_answer_fails_over(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str], answer: Scripted
) -> None:
    upstream.script("bad", answer)
    counts = before(upstream, "bad", "ok")
    resp = client.post(CHAT, json=chat("fo-chat"), headers=auth)
    assert resp.status_code == 200, resp.text
    assert calls_since(upstream, counts) == {"bad": 1, "ok": 1}


@pytest.mark.parametrize("answer", OVERSIZE.values(), ids=OVERSIZE.keys())
@pytest.mark.parametrize("path", [CHAT, IMAGES])
def test_an_oversize_answer_on_the_only_channel_is_a_502(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str], answer: Scripted, path: str
) -> None:
    upstream.script("only", answer)
    body = chat("only-chat") if path == CHAT else image("only-image")
    err = error_of(client.post(path, json=body, headers=auth), 502, "upstream_response_too_large")
    assert err["type"] == "upstream_error"


def test_an_sse_line_without_end_is_cut_at_the_cap(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str]
) -> None:
    first = sse(CHAT_CHUNKS[1], done=False)
    upstream.script(
        "only",
        Scripted(
            content_type="text/event-stream", length=None, parts=[first, b"data: {"], fill=(b"y" * 65536, 40)
        ),  # fmt: skip
    )
    resp = client.post(CHAT, json=chat("only-chat", stream=True), headers=auth)
    assert resp.status_code == 200
    assert stream_error(resp.content)["code"] == "upstream_response_too_large"


def test_many_short_sse_lines_of_one_event_are_cut_at_the_cap(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str]
) -> None:
    upstream.script(
        "only",
        Scripted(
            content_type="text/event-stream",
            length=None,
            parts=[sse(CHAT_CHUNKS[1], done=False)],
            fill=(b"data: " + b"z" * 1000 + b"\n", 2000),
        ),  # fmt: skip
    )
    resp = client.post(CHAT, json=chat("only-chat", stream=True), headers=auth)
    assert stream_error(resp.content)["code"] == "upstream_response_too_large"


# --- streams --------------------------------------------------------------------------------------


def test_a_stream_answered_with_json_fails_over(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str]
) -> None:
    upstream.script("bad", Scripted(parts=[json.dumps({"choices": [{"message": {}}]}).encode()]))
    counts = before(upstream, "bad", "ok")
    resp = client.post(CHAT, json=chat("fo-chat", stream=True), headers=auth)
    assert resp.status_code == 200
    assert resp.content.endswith(b"data: [DONE]\n\n")
    assert calls_since(upstream, counts) == {"bad": 1, "ok": 1}


@pytest.mark.parametrize("path", [CHAT, IMAGES])
def test_a_stream_answered_with_an_error_json_is_a_bad_answer(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str], path: str
) -> None:
    upstream.script("only", Scripted(parts=[b'{"error": {"message": "quota gone upstream"}}']))
    body = chat("only-chat", stream=True) if path == CHAT else image("only-image", stream=True)
    err = error_of(client.post(path, json=body, headers=auth), 502, "bad_upstream_response")
    assert "quota gone upstream" in err["message"]


def test_a_chat_stream_cut_before_its_end_ends_with_an_error_event(
    upstream: HostileUpstream, gateway: tuple[TestClient, dict[str, str], Path]
) -> None:
    client, auth, db = gateway
    cut = sse(*CHAT_CHUNKS[:3], done=False)  # no finish_reason, no [DONE]
    upstream.script("only", Scripted(content_type="text/event-stream", parts=[cut]))
    headers = {**auth, "x-request-id": "cut-chat"}
    resp = client.post(CHAT, json=chat("only-chat", stream=True), headers=headers)
    assert resp.status_code == 200
    events = sse_events(resp.content)
    assert [json.loads(d)["choices"][0]["delta"].get("content") for _, d in events[:3]] == [
        "",
        "Hello",
        " there",
    ]
    err = stream_error(resp.content)
    assert (err["code"], err["type"]) == ("upstream_stream_interrupted", "upstream_error")
    record = read_record(db, "cut-chat")
    assert (record["status"], record["error_code"]) == ("failed", "upstream_stream_interrupted")


def test_an_error_the_upstream_sends_inside_a_chat_stream_ends_it_sanitized(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str]
) -> None:
    error = {"error": {"message": "overloaded, see https://internal.example/s key sk-up-only-1234567"}}
    stream = sse(CHAT_CHUNKS[1], done=False) + sse(error, CHAT_CHUNKS[2])
    upstream.script("only", Scripted(content_type="text/event-stream", parts=[stream]))
    resp = client.post(CHAT, json=chat("only-chat", stream=True), headers=auth)
    events = sse_events(resp.content)
    assert json.loads(events[0][1])["choices"][0]["delta"] == {"content": "Hello"}
    err = stream_error(resp.content)
    assert err["code"] == "bad_upstream_response" and "overloaded" in err["message"]
    assert "internal.example" not in err["message"] and "sk-up-only" not in err["message"]
    assert len(events) == 2  # nothing after the upstream's error


def test_an_error_event_inside_an_images_stream_ends_it_sanitized(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str]
) -> None:
    partial = b'event: image_generation.partial_image\ndata: {"type": "image_generation.partial_image"}\n\n'
    error = (
        b'event: error\ndata: {"type": "error", "error": {"message": "moderation at https://x.example"}}\n\n'
    )
    upstream.script("only", Scripted(content_type="text/event-stream", parts=[partial + error]))
    resp = client.post(IMAGES, json=image("only-image", stream=True, partial_images=1), headers=auth)
    err = stream_error(resp.content)
    assert err["code"] == "bad_upstream_response" and "moderation at [url]" in err["message"]


def test_a_chat_stream_with_a_finish_reason_but_no_done_is_complete(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str]
) -> None:
    upstream.script("only", Scripted(content_type="text/event-stream", parts=[sse(*CHAT_CHUNKS, done=False)]))
    resp = client.post(CHAT, json=chat("only-chat", stream=True), headers=auth)
    assert resp.content.endswith(b"data: [DONE]\n\n")


def test_a_chat_stream_cut_mid_event_ends_with_an_error_event(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str]
) -> None:
    partial = sse(CHAT_CHUNKS[1], done=False) + b'data: {"choices": [{"delta": {"content": "x"}, "finish_re'
    upstream.script("only", Scripted(content_type="text/event-stream", length=None, parts=[partial]))
    resp = client.post(CHAT, json=chat("only-chat", stream=True), headers=auth)
    assert stream_error(resp.content)["code"] == "upstream_stream_interrupted"


def test_an_images_stream_without_its_completed_event_ends_with_an_error_event(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str]
) -> None:
    partial = b'event: image_generation.partial_image\ndata: {"type": "image_generation.partial_image"}\n\n'
    upstream.script("only", Scripted(content_type="text/event-stream", parts=[partial]))
    resp = client.post(IMAGES, json=image("only-image", stream=True, partial_images=1), headers=auth)
    assert resp.status_code == 200
    assert sse_events(resp.content)[0][0] == "image_generation.partial_image"
    assert stream_error(resp.content)["code"] == "upstream_stream_interrupted"


def test_a_whole_images_stream_is_relayed(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str]
) -> None:
    upstream.clear("bad")
    resp = client.post(IMAGES, json=image("fo-image", stream=True, partial_images=1), headers=auth)
    names = [name for name, _ in sse_events(resp.content)]
    assert names[-1] == "image_generation.completed"


# --- upstream status codes ------------------------------------------------------------------------


def test_an_upstream_504_is_not_retried_and_is_a_504(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str]
) -> None:
    upstream.script(
        "bad", Scripted(status=504, parts=[b"<html>gateway timeout</html>"], content_type="text/html")
    )
    counts = before(upstream, "bad", "ok")
    err = error_of(client.post(CHAT, json=chat("fo-chat"), headers=auth), 504, "upstream_timeout")
    assert err["type"] == "upstream_error"
    assert calls_since(upstream, counts) == {"bad": 1, "ok": 0}


def test_upstream_401_on_every_key_is_a_502_upstream_auth_failed(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str]
) -> None:
    body = b'{"error": {"message": "Incorrect API key provided: sk-a", "code": "invalid_api_key"}}'
    upstream.script("keys", Scripted(status=401, parts=[body]))
    counts = before(upstream, "keys")
    err = error_of(client.post(CHAT, json=chat("auth-chat"), headers=auth), 502, "upstream_auth_failed")
    assert err["type"] == "upstream_error"
    assert "sk-a" not in err["message"]
    assert calls_since(upstream, counts) == {"keys": 2}  # each key tried once, then disabled
    again = client.post(CHAT, json=chat("auth-chat"), headers=auth)
    error_of(again, 503, "no_available_channel")
    assert calls_since(upstream, counts) == {"keys": 2}


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_401_403_fails_over_to_another_channel(
    upstream: HostileUpstream, gateway: tuple[TestClient, dict[str, str], Path], status: int
) -> None:
    client, auth, _ = gateway
    upstream.script(f"r{status}", Scripted(status=status, parts=[b'{"error": {"message": "no"}}']))
    counts = before(upstream, f"r{status}", "ok")
    resp = client.post(CHAT, json=chat(f"revoked-{status}"), headers=auth)
    assert resp.status_code == 200, resp.text
    assert calls_since(upstream, counts) == {f"r{status}": 1, "ok": 1}


@pytest.mark.parametrize(("status", "code"), [(500, "upstream_http_500"), (200, "bad_upstream_response")])
def test_a_long_answer_to_a_stream_request_that_is_no_stream_is_read_no_further(
    upstream: HostileUpstream, client: TestClient, auth: dict[str, str], status: int, code: str
) -> None:
    """Only the start of it is read, whatever its length: the status still says what happened."""
    long = Scripted(status=status, content_type="text/plain", length=None, fill=(b"x" * 65536, 48))
    upstream.script("only", long)
    error_of(client.post(CHAT, json=chat("only-chat", stream=True), headers=auth), 502, code)
