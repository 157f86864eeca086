"""§4.5: `stream: true` with `partial_images` passes the upstream's SSE events through unchanged."""

from __future__ import annotations

import base64

import httpx2 as httpx
from openai import OpenAI

from tests.e2e.images.support import usage_record
from tests.fakes.openai_images import FakeOpenAIImages, make_png
from tests.gateway_process import GatewayProcess


def strip_comments(raw: bytes) -> bytes:
    """The stream without `: keepalive` comment lines (they may come at any time)."""
    frames = [f for f in raw.split(b"\n\n") if f and not f.startswith(b":")]
    return b"".join(f + b"\n\n" for f in frames)


def test_generation_stream_is_relayed_byte_for_byte(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages
) -> None:
    rid = "img-e2e-stream-raw"
    body = {"model": "gpt-image-2", "prompt": "a comet", "stream": True, "partial_images": 1}
    headers = {"Authorization": f"Bearer {token}", "x-request-id": rid}
    with httpx.stream("POST", f"{gateway.url}/v1/images/generations", json=body, headers=headers,
                      timeout=30) as resp:  # fmt: skip
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read()
    (call,) = fake.calls_for()
    assert call.json == body | {"model": "gpt-image-2"}
    assert strip_comments(raw) == call.stream_bytes
    names = [line for line in raw.split(b"\n") if line.startswith(b"event:")]
    assert names == [b"event: image_generation.partial_image", b"event: image_generation.completed"]

    record = usage_record(gateway, rid)
    assert record["stream"] == 1 and record["status"] == "success"
    assert record["image_count"] == 1  # the completed event, not the partial one
    assert record["total_tokens"] == 322 and record["channel"] == "gptimage"


def test_generation_stream_through_the_sdk(client: OpenAI, fake: FakeOpenAIImages) -> None:
    stream = client.images.generate(model="gpt-image-2", prompt="a comet", stream=True, partial_images=2)
    events = list(stream)
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    partial = events[0]
    assert partial.type == "image_generation.partial_image"
    assert partial.partial_image_index == 0
    assert base64.b64decode(partial.b64_json) == make_png("a comet#partial0", (64, 64))
    completed = events[-1]
    assert completed.type == "image_generation.completed"
    assert base64.b64decode(completed.b64_json) == fake.last().produced[0]
    assert completed.usage.total_tokens == 322


def test_edit_stream_through_the_sdk(client: OpenAI, fake: FakeOpenAIImages) -> None:
    source = make_png("stream-edit-source", (32, 32))
    stream = client.images.edit(
        model="gpt-image-2", image=("a.png", source, "image/png"), prompt="ink", stream=True, partial_images=1
    )
    events = list(stream)
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    (call,) = fake.calls_for()
    assert call.multipart and call.fields["stream"] == "true" and call.fields["partial_images"] == "1"
    assert [(f.field, f.data) for f in call.files] == [("image", source)]
    assert base64.b64decode(events[-1].b64_json) == call.produced[0]


def test_stream_fails_over_before_the_first_byte(client: OpenAI, fake: FakeOpenAIImages) -> None:
    events = list(client.images.generate(model="gpt-image-fo", prompt="x", stream=True, partial_images=1))
    assert [e.type for e in events] == ["image_generation.partial_image", "image_generation.completed"]
    assert fake.count("fail500") == 1 and fake.count("gptimage") == 1


def test_multi_line_sse_data_is_relayed_as_valid_sse(client: OpenAI, fake: FakeOpenAIImages) -> None:
    """An event whose data spans several `data:` lines (valid SSE) must reach the client as the same event."""
    events = list(
        client.images.generate(model="gpt-image-ml", prompt="pretty", stream=True, partial_images=1)
    )
    assert [e.type for e in events] == ["image_generation.partial_image", "image_generation.completed"]
    assert base64.b64decode(events[-1].b64_json) == fake.last("multiline").produced[0]


def test_multi_line_sse_data_raw(gateway: GatewayProcess, token: str, fake: FakeOpenAIImages) -> None:
    body = {"model": "gpt-image-ml", "prompt": "pretty", "stream": True, "partial_images": 1}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("POST", f"{gateway.url}/v1/images/generations", json=body, headers=headers,
                      timeout=30) as resp:  # fmt: skip
        raw = resp.read()
    # Every non-empty line of an SSE stream is a field (`event:`, `data:`, ...) or a comment.
    bad = [line for line in raw.split(b"\n") if line and not line.startswith((b"event:", b"data:", b":"))]
    assert bad == [], bad[:3]
    assert strip_comments(raw) == fake.last("multiline").stream_bytes
