"""A hostile upstream driven by hypothesis, against the real app in process.

Each example draws one upstream answer (status, content type, framing, body) and one client request
(chat or images, stream or not). The answers: truncated JSON, wrong types (`choices: "x"`, `data: [1]`,
`usage: "x"`, `b64_json: 5`…), deep nesting, invalid UTF-8, SSE streams cut anywhere or with no newline,
a huge announced Content-Length, bodies over the cap, slow drips, the connection closed mid-body.

Property: every client gets a §2 error JSON, a real answer, or an SSE stream that ends with `[DONE]`
(chat), its `*.completed` event (images) or an SSE `error` event; never a 500, never a crash logged;
the gateway still serves a good request afterwards, and the process's memory stays bounded.
Fixed seed (derandomize), bounded examples, no example database on disk.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.gateway_app import ERROR_KEYS, error_of, gateway_client, openai_channel, sse_events
from tests.fakes.hostile import CHAT_ANSWER, CHAT_CHUNKS, HostileUpstream, Scripted

EXAMPLES = 200
CAP_MB = 1
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABpfZFQAAAAABJRU5ErkJggg=="

# Values of the wrong type for any field.
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.just("![x](data:image/png;base64,AAAA"),
    st.just(f"![x](data:image/png;base64,{PNG_B64})"),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
usage = st.one_of(
    junk,
    st.fixed_dictionaries(
        {},
        optional={
            "prompt_tokens": junk,
            "completion_tokens": junk,
            "total_tokens": junk,
            "input_tokens": junk,
            "prompt_tokens_details": junk,
            "output_tokens_details": junk,
        },
    ),
)
message = st.one_of(
    junk,
    st.fixed_dictionaries(
        {},
        optional={"role": junk, "content": junk, "images": st.one_of(junk, st.lists(junk, max_size=2))},
    ),
)
choice = st.one_of(
    junk,
    st.fixed_dictionaries(
        {}, optional={"message": message, "delta": message, "finish_reason": junk, "index": junk}
    ),
)
chat_answer = st.fixed_dictionaries(
    {},
    optional={
        "choices": st.one_of(junk, st.lists(choice, max_size=3)),
        "usage": usage,
        "model": junk,
        "error": junk,
    },
)
image_item = st.one_of(
    junk,
    st.fixed_dictionaries(
        {},
        optional={
            "b64_json": st.one_of(junk, st.just(PNG_B64), st.just("not base64!")),
            "url": st.one_of(junk, st.just("data:image/png;base64," + PNG_B64), st.just("data:x")),
            "revised_prompt": junk,
        },
    ),
)
images_answer = st.fixed_dictionaries(
    {},
    optional={
        "data": st.one_of(junk, st.lists(image_item, max_size=3)),
        "usage": usage,
        "size": junk,
        "quality": junk,
        "created": junk,
        "error": junk,
    },
)
IMAGE_EVENT = {"type": "image_generation.completed", "b64_json": PNG_B64, "usage": {"total_tokens": 3}}


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def good_body(operation: str) -> bytes:
    """What a well-behaved upstream answers to `operation`."""
    if operation == "chat":
        return dumps(CHAT_ANSWER)
    if operation == "chat-stream":
        return b"".join(b"data: " + dumps(c) + b"\n\n" for c in CHAT_CHUNKS) + b"data: [DONE]\n\n"
    if operation == "images":
        return dumps({"created": 1, "data": [{"b64_json": PNG_B64}]})
    partial = {**IMAGE_EVENT, "type": "image_generation.partial_image"}
    return (
        b"event: image_generation.partial_image\ndata: " + dumps(partial) + b"\n\n"
        b"event: image_generation.completed\ndata: " + dumps(IMAGE_EVENT) + b"\n\n"
    )


@st.composite
def json_bodies(draw: st.DrawFn, operation: str) -> bytes:
    """One JSON-ish body: a hostile shape, cut, nested deep, not UTF-8, or not JSON at all."""
    shaped = chat_answer if operation.startswith("chat") else images_answer
    body = draw(shaped.map(dumps))
    kind = draw(st.sampled_from(["as is", "as is", "as is", "cut", "deep", "not utf-8", "not json"]))
    if kind == "cut":
        return body[: draw(st.integers(0, max(len(body) - 1, 0)))]
    if kind == "deep":
        depth = draw(st.sampled_from([100, 2000, 50_000]))
        return b'{"choices": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "not utf-8":
        return body.replace(b'"', b'"\xff\xfe', 1)
    if kind == "not json":
        return draw(st.binary(max_size=64))
    return body


@st.composite
def sse_bodies(draw: st.DrawFn, operation: str) -> bytes:
    """An SSE stream mixing good and hostile events, with or without its end, cut anywhere."""
    good = [block + b"\n\n" for block in good_body(operation + "-stream").split(b"\n\n") if block]
    events = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            events.append(draw(st.sampled_from(good)))
            continue
        name = draw(st.sampled_from([None, b"image_generation.partial_image", b"image_generation.completed",
                                     b"error", b"x"]))  # fmt: skip
        data = draw(json_bodies(operation))
        events.append((b"event: " + name + b"\n" if name else b"") + b"data: " + data + b"\n\n")
    if draw(st.booleans()):
        events.append(b"data: [DONE]\n\n")
    raw = b"".join(events)
    ending = draw(st.sampled_from(["whole", "whole", "cut", "no newline"]))
    if ending == "cut":
        return raw[: draw(st.integers(0, len(raw)))]
    if ending == "no newline":
        return raw.replace(b"\n", b" ")
    return raw


@st.composite
def answers(draw: st.DrawFn, operation: str) -> Scripted:
    """One upstream answer to `operation`: good, a hostile 200, a broken one, an error status."""
    base = operation.removesuffix("-stream")
    kind = draw(st.sampled_from(["good", "shape", "shape", "stream", "stream", "broken", "status"]))
    sse_type, json_type = "text/event-stream", "application/json"
    if kind == "good":
        streamed = operation.endswith("stream")
        answer = Scripted(content_type=sse_type if streamed else json_type, parts=[good_body(operation)])
    elif kind == "shape":
        answer = Scripted(content_type=json_type, parts=[draw(json_bodies(base))])
    elif kind == "stream":
        answer = Scripted(content_type=sse_type, parts=[draw(sse_bodies(base))])
    else:
        body = draw(st.one_of(json_bodies(base), sse_bodies(base), st.just(good_body(operation))))
        content_type = draw(st.sampled_from([json_type, sse_type, "text/html", None]))
        status = 200 if kind == "broken" else draw(st.sampled_from([400, 404, 429, 500, 502, 503, 504]))
        answer = Scripted(status=status, content_type=content_type, parts=[body])
    _frame(draw, answer, broken=kind == "broken")
    if draw(st.integers(0, 4)) == 0:
        answer.headers["Retry-After"] = draw(st.sampled_from(["1", "-5", "soon", "1e999"]))
    return answer


def _frame(draw: st.DrawFn, answer: Scripted, *, broken: bool) -> None:
    """Split the body into pieces (maybe dripped), and frame it; a broken answer lies about it."""
    body = answer.parts[0]
    step = max(len(body) // draw(st.integers(1, 4)), 1)
    answer.parts = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    answer.drip = draw(st.sampled_from([0.0, 0.0, 0.0, 0.001]))
    framing = draw(st.sampled_from(["length", "chunked", "until close"]))
    if broken:
        framing = draw(st.sampled_from(["huge length", "short", "over the cap"]))
    if framing == "chunked":
        answer.chunked = True
    elif framing == "until close":
        answer.length = None
    elif framing == "huge length":
        answer.length = 2**40
    elif framing == "short":  # announces more than it sends, then closes
        answer.length = answer.body_length() + draw(st.integers(1, 1000))
    elif framing == "over the cap":
        answer.fill = (b"z" * 65536, CAP_MB * 16 + 4)
        answer.length = draw(st.sampled_from(["auto", None]))


OPERATIONS = ["chat", "chat-stream", "images", "images-stream"]


def request(operation: str) -> tuple[str, dict[str, Any]]:
    if operation.startswith("chat"):
        body = {"model": "fuzz-chat", "messages": [{"role": "user", "content": "hi"}]}
        path = "/v1/chat/completions"
    else:
        body = {"model": "fuzz-image", "prompt": "a cat", "response_format": "url"}
        path = "/v1/images/generations"
    if operation.endswith("stream"):
        body["stream"] = True
        if not operation.startswith("chat"):
            body["partial_images"] = 1
    return path, body


def check_stream(raw: bytes, operation: str) -> None:
    """Ends with [DONE] (chat), a completed event (images) or an error event; errors are §2-shaped."""
    events = [e for e in sse_events(raw) if e[1] != b""]
    assert events, raw[:300]
    for name, data in events:
        if name == "error":
            body = orjson.loads(data)
            assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
    name, data = events[-1]
    if name == "error":
        return
    if operation.startswith("chat"):
        assert data == b"[DONE]", raw[-300:]
    else:
        assert any((n or "").endswith(".completed") for n, _ in events), raw[-300:]


def check(resp: Any, operation: str) -> None:
    assert resp.status_code != 500 and resp.status_code < 600, resp.text[:500]
    streamed = resp.headers.get("content-type", "").startswith("text/event-stream")
    if resp.status_code == 200 and streamed:
        assert operation.endswith("stream")
        check_stream(resp.content, operation)
    elif resp.status_code == 200:
        body = resp.json()
        key = "choices" if operation.startswith("chat") else "data"
        assert isinstance(body[key], list) and body[key], body
    else:
        error_of(resp)


def outcome(resp: Any) -> str:
    """The error code the client got, or "200" / "stream 200" for a stream that ended well."""
    if resp.headers.get("content-type", "").startswith("application/json") and resp.status_code != 200:
        return str(resp.json()["error"]["code"])
    events = sse_events(resp.content) if resp.status_code == 200 else []
    if events and events[-1][0] == "error":
        return str(orjson.loads(events[-1][1])["error"]["code"])
    return "stream 200" if events else "200"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Crashes(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(self.format(record))


@pytest.fixture(scope="module")
def upstream() -> Iterator[HostileUpstream]:
    with HostileUpstream() as server:
        yield server


def test_a_hostile_upstream_never_breaks_the_gateway(upstream: HostileUpstream, tmp_path: Path) -> None:
    channels = [
        openai_channel("fuzz", upstream.base_url("fuzz"), ["fuzz-chat", "fuzz-image"], timeout_seconds=10),
        openai_channel("fine", upstream.base_url("ok"), ["good-chat"]),
    ]
    overrides = {
        "channels": channels,
        "limits": {"max_upstream_response_mb": CAP_MB},
        # Every answer must reach the client: no rest for the channel whatever it answered.
        "retry": {"max_attempts": 1, "failures_to_cooldown": 10**6, "cooldown_seconds": 0,
                  "max_cooldown_seconds": 0},
    }  # fmt: skip
    crashes = Crashes()
    logging.getLogger("gateway.api").addHandler(crashes)
    ran: list[str] = []
    outcomes: Counter[str] = Counter()
    try:
        with gateway_client(tmp_path, **overrides) as (client, auth):
            rss_before = rss_mb()

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(data=st.data(), operation=st.sampled_from(OPERATIONS))
            def one(data: st.DataObject, operation: str) -> None:
                upstream.script("fuzz", data.draw(answers(operation)))
                path, body = request(operation)
                resp = client.post(path, json=body, headers=auth)
                check(resp, operation)
                outcomes[outcome(resp)] += 1
                assert crashes.messages == [], crashes.messages
                ran.append(operation)

            one()
            grown = rss_mb() - rss_before
            good_chat = {"model": "good-chat", "messages": [{"role": "user", "content": "hi"}]}
            good = client.post("/v1/chat/completions", headers=auth, json=good_chat)
            assert good.status_code == 200, good.text
    finally:
        logging.getLogger("gateway.api").removeHandler(crashes)
    assert len(ran) >= EXAMPLES
    # The examples reach every kind of outcome, so the property is tested on each.
    assert outcomes["200"] >= 5 and outcomes["stream 200"] >= 5, outcomes
    for code in ("bad_upstream_response", "upstream_response_too_large", "upstream_stream_interrupted"):
        assert outcomes[code] >= 2, outcomes
    assert grown < 100, f"RSS grew by {grown:.0f} MB over {len(ran)} hostile answers"
