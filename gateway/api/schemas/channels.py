"""Admin channel answers (§7), for the OpenAPI document: state and recent health, and a reload's result.

Documentation only: `gateway/api/admin/channels.py` builds these bodies as plain data. A channel's keys,
base URL and headers are never shown.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

_RATE = "share of the recent attempts that succeeded; null: none"
_P50 = "median latency of the recent successful attempts; null: none"


class ChannelKey(BaseModel):
    """One upstream key of a channel, named by its index."""

    index: int
    state: Literal["ok", "cooling_down", "disabled"] = Field(
        description="`disabled`: the upstream refused the key (401/403) until a reload"
    )
    cooldown_until: str | None = Field(description="ISO 8601, while cooling down")
    recent_attempts: int
    success_rate: float | None = Field(description=_RATE)
    latency_p50_ms: int | None = Field(description=_P50)


class Channel(BaseModel):
    name: str
    kind: Literal["openai", "gemini", "mock"] = Field(description="the upstream's protocol")
    models: list[str]
    groups: list[str]
    priority: int
    weight: float
    enabled: bool
    disabled_by: Literal["config", "admin"] | None = Field(
        description="`config`: `enabled: false` in the file; `admin`: switched off at run time"
    )
    recent_attempts: int
    success_rate: float | None = Field(description=_RATE)
    latency_p50_ms: int | None = Field(description=_P50)
    keys: list[ChannelKey] = Field(description="a channel without keys (mock) shows one slot")


class ChannelList(BaseModel):
    object: Literal["list"]
    data: list[Channel]


class Reloaded(BaseModel):
    reloaded: Literal[True]
    channels: int = Field(description="channels in the new config")
    needs_restart: list[str] = Field(
        description="config sections that changed but take effect only after a restart"
    )
    other_nodes_asked: bool = Field(description="with `scope=all`: the other nodes were told (over Redis)")
