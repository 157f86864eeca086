"""Streaming chat on a Gemini channel (§3.3): text before the image, the image as one chunk with its stored
URL (never base64), keepalive comments while the upstream is silent, and a client that goes away cancels
the upstream stream (seen at the fake)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx
import orjson

from tests.e2e.gemini.conftest import Gateway
from tests.e2e.gemini.support import markdown_urls, png, stored, usage_record, user
from tests.fakes.gemini_upstream import FakeGemini, Reply, frames_of, image_answer

MODEL = "gemini-2.5-flash-image"


def stream(gateway: Gateway, rid: str = "") -> Iterator[str]:
    """The SSE lines of a streamed chat, as they arrive (blank lines left out)."""
    body = {"model": MODEL, "messages": user("a fox"), "stream": True}
    headers = {"Authorization": f"Bearer {gateway.tokens['default']}"}
    if rid:
        headers["x-request-id"] = rid
    with httpx.stream(
        "POST", f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=30
    ) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line:
                yield line


def chunk_of(line: str) -> dict[str, object]:
    assert line.startswith("data: ")
    chunk: dict[str, object] = orjson.loads(line[6:])
    return chunk


def test_text_comes_before_the_image_which_carries_its_stored_url(gateway: Gateway, fake: FakeGemini) -> None:
    image = png("streamed fox")
    fake.will(Reply(frames=frames_of(image_answer(image, text="Here is a fox."))))
    lines = list(stream(gateway))
    assert lines[-1] == "data: [DONE]"
    deltas = [chunk_of(line)["choices"][0]["delta"] for line in lines[:-1] if line.startswith("data: ")]  # type: ignore[index]
    contents = [d.get("content") for d in deltas if d.get("content")]
    assert contents[0] == "Here is a fox."
    (url,) = markdown_urls(contents[1])
    assert contents[1] == f"\n\n![image]({url})"
    (with_image,) = [d for d in deltas if "images" in d]
    assert with_image["images"] == [{"type": "image_url", "image_url": {"url": url}}]
    assert stored(gateway, url) == image
    raw = "\n".join(lines)
    assert "base64" not in raw and "data:image" not in raw


def test_keepalive_comments_while_the_upstream_is_silent(gateway: Gateway, fake: FakeGemini) -> None:
    fake.will(Reply(frames=frames_of(image_answer(png("late fox"))), hold=True))
    lines = stream(gateway)
    first = next(lines)
    assert first == ": keepalive"  # the upstream holds its answer until released
    fake.release.set()
    rest = list(lines)
    assert rest[-1] == "data: [DONE]" and any(markdown_urls(line) for line in rest)


def test_a_client_that_leaves_cancels_the_upstream_stream(gateway: Gateway, fake: FakeGemini) -> None:
    fake.will(Reply(frames=frames_of(image_answer(png("abandoned"), text="Drawing…")), gate=True))
    lines = stream(gateway, rid="stream-abandoned")
    first = next(line for line in lines if line.startswith("data: "))
    assert chunk_of(first)["choices"][0]["delta"]["content"] == "Drawing…"  # type: ignore[index]
    lines.close()  # the client hangs up while the upstream holds after its first frame
    assert fake.stream_closed.wait(10), "the upstream stream was not closed"
    assert "upstream_finished" not in fake.events
    record = usage_record(gateway, "stream-abandoned")
    assert (record["http_status"], record["image_count"], record["cost_micro_usd"]) == (499, 0, 0)
