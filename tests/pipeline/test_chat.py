import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest

from gateway.domain import Caller, Target, Usage, UsageRecord
from gateway.errors import UpstreamError, UpstreamStreamInterrupted
from gateway.pipeline.chat import (
    DONE,
    ChatRequest,
    _has_finish_reason,
    _relay,
    _rewrite_chunk,
    _upstream_body,
)
from gateway.pipeline.common import Ledger
from gateway.providers.base import ChatStream
from gateway.runtime import Runtime
from gateway.settings import ChannelSettings, Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openai"
CHUNKS: list[dict[str, Any]] = json.loads((FIXTURES / "chat_stream_chunks.json").read_text())

CHANNEL = ChannelSettings(
    name="up", kind="mock", models=["my-model"], model_map={"my-model": "upstream-model-2024"}
)


def request(include_usage: bool, **body: Any) -> ChatRequest:
    return ChatRequest(
        body={"model": "my-model", "messages": [], **body},
        model="my-model",
        group=None,
        stream=True,
        include_usage=include_usage,
    )


def make_record() -> UsageRecord:
    return UsageRecord(
        request_id="req-1",
        created_at=datetime.now(UTC),
        token_id="tok",
        group="default",
        endpoint="/v1/chat/completions",
        model="my-model",
        stream=True,
    )


def make_caller() -> Caller:
    return Caller(
        token_id="tok",
        name="t",
        group="default",
        allowed_groups=(),
        models=None,
        chat_image_field=None,
        rpm_limit=None,
        max_concurrency=None,
        quota_micro_usd=None,
        used_micro_usd=0,
        expires_at=None,
        key_hash="h",
    )


def make_ledger() -> tuple[Ledger, list[UsageRecord]]:
    submitted: list[UsageRecord] = []
    rt = cast(
        Runtime,
        SimpleNamespace(
            usage=SimpleNamespace(submit=submitted.append),
            settings=Settings(),
            store=None,  # no storage: chat images keep their URLs
            fetcher=None,
        ),
    )
    return Ledger(rt, make_caller(), make_record(), [CHANNEL], holds_slot=False), submitted


def decode(out: bytes | None) -> Any:
    assert out is not None
    assert out.startswith(b"data: ") and out.endswith(b"\n\n")
    return orjson.loads(out[6:-2])


# _rewrite_chunk


def test_usage_chunk_stripped_when_not_asked_for() -> None:
    ledger, _ = make_ledger()
    req = request(include_usage=False)
    outs = [_rewrite_chunk(orjson.dumps(c), ledger, req) for c in CHUNKS]
    assert outs[-1] is None  # the usage-only chunk (empty choices) is not sent
    for out in outs[:-1]:
        chunk = decode(out)
        assert "usage" not in chunk  # `usage: null` removed as well
        assert chunk["model"] == "my-model"
    assert ledger.record.usage == Usage(
        prompt_tokens=9, completion_tokens=3, total_tokens=12, text_input_tokens=9, text_output_tokens=3
    )


def test_usage_kept_when_asked_for() -> None:
    ledger, _ = make_ledger()
    req = request(include_usage=True)
    outs = [decode(_rewrite_chunk(orjson.dumps(c), ledger, req)) for c in CHUNKS]
    assert outs[-1]["usage"]["total_tokens"] == 12
    assert outs[-1]["choices"] == []
    assert all(o["model"] == "my-model" for o in outs)
    assert outs[0]["usage"] is None  # as OpenAI sends it when the client asked for usage
    assert ledger.record.usage.total_tokens == 12


def test_usage_on_a_chunk_with_choices_is_recorded_then_removed() -> None:
    ledger, _ = make_ledger()
    chunk = {**CHUNKS[3], "usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}}
    out = decode(_rewrite_chunk(orjson.dumps(chunk), ledger, request(include_usage=False)))
    assert "usage" not in out
    assert out["choices"][0]["finish_reason"] == "stop"
    assert ledger.record.usage.completion_tokens == 6


def test_model_rewritten_and_other_fields_kept() -> None:
    ledger, _ = make_ledger()
    out = decode(_rewrite_chunk(orjson.dumps(CHUNKS[1]), ledger, request(include_usage=False)))
    expected = {k: v for k, v in CHUNKS[1].items() if k != "usage"}
    assert out == {**expected, "model": "my-model"}


def test_chunk_without_model_gets_none() -> None:
    ledger, _ = make_ledger()
    out = decode(_rewrite_chunk(b'{"choices": [{"delta": {"content": "x"}}]}', ledger, request(True)))
    assert "model" not in out


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b'"text"'])
def test_non_object_data_passes_through(data: bytes) -> None:
    ledger, _ = make_ledger()
    assert _rewrite_chunk(data, ledger, request(include_usage=False)) == b"data: " + data + b"\n\n"


def test_upstream_body_maps_model_and_always_asks_for_usage() -> None:
    target = Target(CHANNEL, 0)
    req = request(include_usage=False, stream=True, stream_options={"other": 1}, temperature=0.5)
    body = _upstream_body(req, target)
    assert body["model"] == "upstream-model-2024"
    assert body["stream_options"] == {"other": 1, "include_usage": True}
    assert body["temperature"] == 0.5
    assert req.body["model"] == "my-model"  # the client's body is not changed
    assert req.body["stream_options"] == {"other": 1}


def test_upstream_body_non_stream_untouched_options() -> None:
    req = ChatRequest(
        body={"model": "my-model"}, model="my-model", group=None, stream=False, include_usage=False
    )
    assert _upstream_body(req, Target(CHANNEL, 0)) == {"model": "upstream-model-2024"}


# _relay: the SSE relay, with a fake upstream stream


class FakeStream:
    def __init__(self, items: Sequence[bytes | float | Exception]) -> None:
        self.items = list(items)
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[bytes]:
        for item in self.items:
            if isinstance(item, float):
                await asyncio.sleep(item)
            elif isinstance(item, Exception):
                raise item
            else:
                yield item

    async def batches(self) -> AsyncIterator[list[tuple[bytes | None, bytes]]]:
        async for data in self._gen():
            yield [(None, data)]

    async def aclose(self) -> None:
        self.closed = True


def opened(stream: FakeStream) -> asyncio.Future[tuple[ChatStream, Target]]:
    future: asyncio.Future[tuple[ChatStream, Target]] = asyncio.get_running_loop().create_future()
    future.set_result((stream, Target(CHANNEL, 0)))
    return future


async def collect(gen: AsyncIterator[bytes]) -> list[bytes]:
    return [out async for out in gen]


async def test_relay_rewrites_and_ends_with_done() -> None:
    ledger, submitted = make_ledger()
    upstream = FakeStream([orjson.dumps(c) for c in CHUNKS] + [b"[DONE]", b"never sent"])
    out = await collect(_relay(ledger.rt, ledger, request(False), lambda: opened(upstream)))
    assert out[-1] == DONE
    assert len(out) == len(CHUNKS)  # four content chunks (usage chunk stripped) + DONE
    assert [decode(o)["model"] for o in out[:-1]] == ["my-model"] * 4
    assert upstream.closed
    assert submitted == [ledger.record]
    record = submitted[0]
    assert (record.status, record.http_status) == ("success", 200)
    assert record.channel == "up" and record.upstream_model == "upstream-model-2024"
    assert record.usage.total_tokens == 12
    assert record.ttfb_ms is not None


async def test_relay_waits_for_failover_still_opening() -> None:
    ledger, submitted = make_ledger()
    future: asyncio.Future[tuple[ChatStream, Target]] = asyncio.get_running_loop().create_future()
    upstream = FakeStream([orjson.dumps(CHUNKS[1]), b"[DONE]"])
    loop = asyncio.get_running_loop()
    loop.call_later(0.18, future.set_result, (upstream, Target(CHANNEL, 0)))
    out = await collect(_relay(ledger.rt, ledger, request(False), lambda: future))
    assert decode(out[0])["choices"][0]["delta"] == {"content": "Hello"}
    assert out[-1] == DONE
    assert submitted[0].status == "success"


async def test_relay_failover_error_is_raised_for_the_response_layer() -> None:
    ledger, submitted = make_ledger()
    future: asyncio.Future[tuple[ChatStream, Target]] = asyncio.get_running_loop().create_future()
    error = UpstreamError("all failed", status=502, code="upstream_http_500", upstream_status=500)
    asyncio.get_running_loop().call_later(0.02, future.set_exception, error)
    with pytest.raises(UpstreamError):
        await collect(_relay(ledger.rt, ledger, request(False), lambda: future))
    assert (submitted[0].status, submitted[0].http_status) == ("failed", 502)


async def test_relay_mid_stream_upstream_error() -> None:
    ledger, submitted = make_ledger()
    boom = UpstreamError("cut", status=502, code="upstream_stream_error")
    upstream = FakeStream([orjson.dumps(CHUNKS[1]), boom])
    gen = _relay(ledger.rt, ledger, request(False), lambda: opened(upstream))
    assert decode(await gen.__anext__())["choices"][0]["delta"] == {"content": "Hello"}
    with pytest.raises(UpstreamError):
        await gen.__anext__()
    assert upstream.closed
    assert submitted[0].error_code == "upstream_stream_error"


async def test_relay_of_a_stream_cut_before_its_end_raises_and_sends_no_done() -> None:
    """No `[DONE]` and no finish_reason: the client must not take the cut answer for a whole one."""
    ledger, submitted = make_ledger()
    upstream = FakeStream([orjson.dumps(c) for c in CHUNKS[:3]])  # finish_reason null in all three
    gen = _relay(ledger.rt, ledger, request(False), lambda: opened(upstream))
    out = []
    with pytest.raises(UpstreamStreamInterrupted) as info:
        async for chunk in gen:
            out.append(chunk)
    assert len(out) == 3 and DONE not in out
    assert (info.value.status, info.value.code) == (502, "upstream_stream_interrupted")
    assert (submitted[0].status, submitted[0].error_code) == ("failed", "upstream_stream_interrupted")
    assert upstream.closed


async def test_relay_of_a_stream_with_a_finish_reason_but_no_done_is_complete() -> None:
    ledger, submitted = make_ledger()
    upstream = FakeStream([orjson.dumps(c) for c in CHUNKS])  # ends after the usage chunk, no [DONE]
    out = await collect(_relay(ledger.rt, ledger, request(True), lambda: opened(upstream)))
    assert out[-1] == DONE
    assert submitted[0].status == "success"


@pytest.mark.parametrize(
    ("data", "finished"),
    [
        (b'{"choices": [{"finish_reason": null}]}', False),
        (b'{"choices":[{"finish_reason":null}]}', False),
        (b'{"choices": [{"finish_reason": "stop"}]}', True),
        (b'{"choices":[{"finish_reason":"length"}]}', True),
        (b'{"choices": [{"delta": {"content": "say \\"finish_reason\\": \\"stop\\""}}]}', False),
    ],
)
def test_finish_reason_seen_without_a_parse(data: bytes, finished: bool) -> None:
    assert orjson.loads(data)  # each case is valid JSON
    assert _has_finish_reason(data) is finished


async def test_relay_closed_by_client_closes_upstream_and_records_499() -> None:
    ledger, submitted = make_ledger()
    upstream = FakeStream([orjson.dumps(CHUNKS[1]), orjson.dumps(CHUNKS[2])])
    gen = _relay(ledger.rt, ledger, request(False), lambda: opened(upstream))
    first = await gen.__anext__()
    assert decode(first)["choices"][0]["delta"]["content"] == "Hello"
    await gen.aclose()  # type: ignore[attr-defined]
    assert upstream.closed
    assert len(submitted) == 1
    assert (submitted[0].http_status, submitted[0].error_code) == (499, "client_closed_request")


def test_fast_path_after_the_first_chunk_gives_the_same_bytes_as_a_parse() -> None:
    ledger, _ = make_ledger()
    model_bytes: dict[str, bytes] = {}
    spaced = (
        b'{"id": "c1", "model": "upstream-model-2024", "choices": [{"delta": {"content": "x"}}], '
        b'"usage": null}'
    )
    first = _rewrite_chunk(spaced, ledger, request(include_usage=False), model_bytes)
    assert model_bytes["old"] == b'"model": "upstream-model-2024"'
    second = _rewrite_chunk(spaced, ledger, request(include_usage=False), model_bytes)
    assert (
        decode(first)
        == decode(second)
        == {"id": "c1", "model": "my-model", "choices": [{"delta": {"content": "x"}}]}
    )
    compact = orjson.dumps({"model": "upstream-model-2024", "choices": [], "usage": {"total_tokens": 3}})
    assert (
        _rewrite_chunk(compact, ledger, request(include_usage=False), model_bytes) is None
    )  # slow path: usage
    assert ledger.record.usage.total_tokens == 3
