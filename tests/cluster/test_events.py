"""The wire form of cluster events: every event survives the round trip; anything malformed is dropped."""

from __future__ import annotations

import orjson
import pytest

from gateway.cluster.events import (
    ChannelSwitch,
    Event,
    KeyCooldown,
    KeyDisabled,
    ReloadRequested,
    TokenChanged,
    decode,
    encode,
)

EVENTS: list[Event] = [
    KeyCooldown("gemini-economy", 3, 1_700_000_123.5),
    KeyDisabled("openai-main", 0),
    ChannelSwitch("ch", False),
    ChannelSwitch("ch", True),
    TokenChanged("tok_0123"),
    ReloadRequested(),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_round_trip(event: Event) -> None:
    assert decode(encode(event, "node-a")) == ("node-a", event)
    assert decode(encode(event, "node-a").decode()) == ("node-a", event)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        {"type": "token_changed", "token_id": "t"},  # no sender
        {"node": "n", "type": "unknown"},
        {"node": "n", "type": "token_changed"},
        {"node": "n", "type": "token_changed", "token_id": ""},
        {"node": "n", "type": "token_changed", "token_id": "x" * 300},
        {"node": "n", "type": "key_disabled", "channel": "c", "key_index": -1},
        {"node": "n", "type": "key_disabled", "channel": "c", "key_index": "0"},
        {"node": "n", "type": "key_disabled", "channel": "c", "key_index": True},
        {"node": "n", "type": "key_cooldown", "channel": "c", "key_index": 0, "until": "soon"},
        {"node": "n", "type": "key_cooldown", "channel": "c", "key_index": 0, "until": True},
        {"node": "n", "type": "channel_switch", "channel": "c", "enabled": 1},
        {"node": "n", "type": "token_changed", "token_id": "t", "pad": "x" * 5000},
    ],
)
def test_malformed_messages_are_dropped(body: bytes | dict[str, object]) -> None:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    assert decode(data) is None
