"""Events that arrive in one read (a burst) are relayed as the same bytes as events arriving one by one:
the search over a whole burst (`_plain_block`) gives what the event by event path gives, whether the burst
came as the plain bytes of `data:` lines (`PlainRun`) or as parsed events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from gateway.pipeline.chat import DONE, _relay
from gateway.providers.sse import PlainRun
from tests.pipeline.test_chat import CHUNKS, FakeStream, collect, make_ledger, opened, request


class BurstStream(FakeStream):
    """Every event in one batch, as when the upstream's whole answer comes in one read."""

    async def batches(self) -> AsyncIterator[list[tuple[bytes | None, bytes]]]:
        yield [(None, item) for item in self.items if isinstance(item, bytes)]


class PlainBurstStream(FakeStream):
    """Every event in one batch of the bytes that came, as the SSE reader gives plain `data:` lines."""

    async def batches(self) -> AsyncIterator[PlainRun]:
        datas = [item for item in self.items if isinstance(item, bytes)]
        yield PlainRun(b"".join(b"data: " + data + b"\n\n" for data in datas), len(datas))


def _events(usage_null: bool, content: str = "Hi") -> list[bytes]:
    first, middle, last, usage = CHUNKS[0], CHUNKS[1], CHUNKS[-2], CHUNKS[-1]
    body = [first] + [{**middle, "choices": [{**middle["choices"][0], "delta": {"content": content}}]}] * 12
    events = [{k: v for k, v in c.items() if usage_null or k != "usage"} for c in [*body, last]]
    return [orjson.dumps({**e, "model": "upstream-model-2024"}) for e in [*events, usage]] + [b"[DONE]"]


async def _relayed(stream: FakeStream, include_usage: bool) -> tuple[bytes, Any]:
    ledger, submitted = make_ledger()
    out = await collect(_relay(ledger.rt, ledger, request(include_usage), lambda: opened(stream)))
    return b"".join(out), submitted[0]


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("usage_null", [False, True])
@pytest.mark.parametrize("content", ["Hi", "see ![x](http://h/i.png)", "[DONE]", "Hi! [x] !", "data: [DONE]"])
@pytest.mark.parametrize("kind", [BurstStream, PlainBurstStream])
async def test_a_burst_is_relayed_as_the_same_bytes_as_single_events(
    include_usage: bool, usage_null: bool, content: str, kind: type[FakeStream]
) -> None:
    events = _events(usage_null, content)
    burst, burst_record = await _relayed(kind(events), include_usage)
    single, single_record = await _relayed(FakeStream(events), include_usage)
    assert burst == single
    relayed = len(events) - 1 - (not include_usage)  # [DONE], and the usage chunk unless asked for
    assert burst.endswith(DONE) and burst.count(b'"model":"my-model"') == relayed
    assert b"upstream-model-2024" not in burst
    assert burst_record.usage == single_record.usage and burst_record.usage.total_tokens == 12


@pytest.mark.parametrize("kind", [BurstStream, PlainBurstStream])
async def test_a_burst_with_an_event_spelt_otherwise_or_an_early_done_goes_event_by_event(
    kind: type[FakeStream],
) -> None:
    events = _events(usage_null=False)
    spaced = events[5].replace(b'"model":"upstream-model-2024"', b'"model": "upstream-model-2024"')
    for changed in ([*events[:5], spaced, *events[6:]], [*events[:5], b"[DONE]", *events[5:]]):
        burst, _ = await _relayed(kind(changed), include_usage=False)
        single, _ = await _relayed(FakeStream(changed), include_usage=False)
        assert burst == single
        assert b"upstream-model-2024" not in burst.split(DONE)[0] and burst.endswith(DONE)


async def test_an_event_whose_data_spans_lines_is_sent_as_lines_of_data() -> None:
    """SSE joins an event's `data:` lines with a line end; relayed, each line is a `data:` line again."""
    events = _events(usage_null=False)
    events[3] = events[3].replace(b'"model":', b'\n"model":')
    relayed, _ = await _relayed(FakeStream(events), include_usage=False)
    for block in relayed.removesuffix(DONE).split(b"\n\n")[:-1]:
        lines = block.split(b"\n")
        assert all(line.startswith(b"data: ") for line in lines), block
        assert orjson.loads(b"\n".join(line[6:] for line in lines))["model"] == "my-model"
