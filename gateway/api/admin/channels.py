"""Admin channel endpoints (§7): state and recent health per channel and key, run-time switches, reload.

Never shown: a key, a base URL (it may carry credentials) or a header value. Keys are named by index.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from gateway.api.admin.deps import AdminDep
from gateway.api.deps import RuntimeDep
from gateway.errors import InvalidRequest, NotFound
from gateway.routing.stats import Summary
from gateway.runtime import Runtime
from gateway.settings import ChannelSettings

router = APIRouter(prefix="/admin")


def _json(data: object) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def _recent(summary: Summary) -> dict[str, object]:
    return {
        "recent_attempts": summary.attempts,
        "success_rate": summary.success_rate,
        "latency_p50_ms": summary.latency_p50_ms,
    }


def _key_view(rt: Runtime, channel: str, index: int, summary: Summary) -> dict[str, object]:
    state, seconds_left = rt.health.state(channel, index)
    until = None
    if seconds_left is not None:
        until = (datetime.now(UTC) + timedelta(seconds=seconds_left)).isoformat(timespec="seconds")
    return {
        "index": index,
        "state": "cooling_down" if state == "cooling" else state,
        "cooldown_until": until,
        **_recent(summary),
    }


def channel_view(rt: Runtime, ch: ChannelSettings) -> dict[str, object]:
    n_keys = max(len(ch.api_keys), 1)  # a mock channel has no keys but one implicit slot
    whole, per_key = rt.health.stats(ch.name, range(n_keys))
    switched_on = rt.health.channel_enabled(ch.name)
    return {
        "name": ch.name,
        "kind": ch.kind,
        "models": list(ch.models),
        "groups": list(ch.groups),
        "priority": ch.priority,
        "weight": ch.weight,
        "enabled": ch.enabled and switched_on,
        "disabled_by": None if ch.enabled and switched_on else ("config" if not ch.enabled else "admin"),
        **_recent(whole),
        "keys": [_key_view(rt, ch.name, i, per_key[i]) for i in range(n_keys)],
    }


@router.get("/channels")
async def list_channels(rt: RuntimeDep, _: AdminDep) -> Response:
    return _json({"object": "list", "data": [channel_view(rt, ch) for ch in rt.catalog.channels()]})


def _channel(rt: Runtime, name: str) -> ChannelSettings:
    ch = rt.catalog.channel(name)
    if ch is None:
        raise NotFound(f"No channel named '{name}'.", code="channel_not_found")
    return ch


@router.get("/channels/{name}")
async def get_channel(name: str, rt: RuntimeDep, _: AdminDep) -> Response:
    return _json(channel_view(rt, _channel(rt, name)))


@router.post("/channels/{name}/{action}")
async def switch_channel(
    name: str, action: Literal["enable", "disable"], rt: RuntimeDep, _: AdminDep
) -> Response:
    ch = _channel(rt, name)
    if action == "enable" and not ch.enabled:
        raise InvalidRequest(
            f"Channel '{name}' is switched off in the config file (enabled: false): "
            "change the file and POST /admin/reload.",
            code="channel_disabled_in_config",
        )
    await rt.switch_channel(name, action == "enable")
    return _json(channel_view(rt, ch))


@router.post("/reload")
async def reload(rt: RuntimeDep, _: AdminDep, scope: Literal["node", "all"] = "node") -> Response:
    done = await rt.reload()
    asked_others = scope == "all" and await rt.ask_all_to_reload()
    return _json(
        {
            "reloaded": True,
            "channels": done.channels,
            "needs_restart": done.needs_restart,
            "other_nodes_asked": asked_others,
        }
    )
