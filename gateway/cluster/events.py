"""The events gateway processes tell each other, and their wire form (one JSON object per message).

A message comes from Redis, which other programs may write to: it is checked field by field like any
input, and anything malformed is dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class KeyCooldown:
    """An upstream key rests until `until` (wall-clock epoch seconds, comparable across nodes)."""

    channel: str
    key_index: int
    until: float


@dataclass(frozen=True, slots=True)
class KeyDisabled:
    """An upstream refused a key (401/403): every node stops using it until its own reload."""

    channel: str
    key_index: int


@dataclass(frozen=True, slots=True)
class ChannelSwitch:
    """A channel switched on or off at run time through the admin API."""

    channel: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class TokenChanged:
    """A token was revoked, disabled, rotated or edited: drop it from every auth cache."""

    token_id: str


@dataclass(frozen=True, slots=True)
class ReloadRequested:
    """Re-read the config file (`POST /admin/reload?scope=all`)."""


Event = KeyCooldown | KeyDisabled | ChannelSwitch | TokenChanged | ReloadRequested
HealthEvent = KeyCooldown | KeyDisabled

_MAX_MESSAGE = 4096  # every event is small; a larger message is not ours


def encode(event: Event, node: str) -> bytes:
    body: dict[str, object] = {"node": node}
    match event:
        case KeyCooldown(channel, index, until):
            body.update(type="key_cooldown", channel=channel, key_index=index, until=until)
        case KeyDisabled(channel, index):
            body.update(type="key_disabled", channel=channel, key_index=index)
        case ChannelSwitch(channel, enabled):
            body.update(type="channel_switch", channel=channel, enabled=enabled)
        case TokenChanged(token_id):
            body.update(type="token_changed", token_id=token_id)
        case ReloadRequested():
            body.update(type="reload")
    return orjson.dumps(body)


def _str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ValueError(name)
    return value


def _index(body: dict[str, Any]) -> int:
    value = body.get("key_index")
    if type(value) is not int or not 0 <= value < 10_000:
        raise ValueError("key_index")
    return value


def _decode_event(body: dict[str, Any]) -> Event:
    kind = body.get("type")
    if kind == "key_cooldown":
        until = body.get("until")
        if not isinstance(until, int | float) or isinstance(until, bool) or not math.isfinite(until):
            raise ValueError("until")
        return KeyCooldown(_str(body, "channel"), _index(body), float(until))
    if kind == "key_disabled":
        return KeyDisabled(_str(body, "channel"), _index(body))
    if kind == "channel_switch":
        enabled = body.get("enabled")
        if not isinstance(enabled, bool):
            raise ValueError("enabled")
        return ChannelSwitch(_str(body, "channel"), enabled)
    if kind == "token_changed":
        return TokenChanged(_str(body, "token_id"))
    if kind == "reload":
        return ReloadRequested()
    raise ValueError("type")


def decode(data: bytes | str) -> tuple[str, Event] | None:
    """(sender node, event), or None for anything that is not a well-formed event."""
    if len(data) > _MAX_MESSAGE:
        return None
    try:
        body = orjson.loads(data)
        if not isinstance(body, dict):
            return None
        return _str(body, "node"), _decode_event(body)
    except (orjson.JSONDecodeError, ValueError):
        return None
