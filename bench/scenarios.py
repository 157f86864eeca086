"""The benchmark's scenarios: what load, what upstream behaviour, and what the gateway must achieve."""

from __future__ import annotations

import json
from dataclasses import dataclass

MODEL = "bench-model"
PROMPT = "Say hello in one short sentence."


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    connections: int
    duration_s: float
    upstream_delay_s: float = 0.0
    stream: bool = False
    chunks: int = 20
    chunk_interval_s: float = 0.0  # 0: the upstream sends a whole stream at once
    min_ratio: float | None = None  # gateway req/s must reach this fraction of the reference's
    goal: str = ""

    def body(self) -> str:
        payload: dict[str, object] = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
        if self.stream:
            payload["stream"] = True
        return json.dumps(payload, separators=(",", ":"))


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="small",
        title="small chat, 64 conns",
        connections=64,
        duration_s=15,
        min_ratio=0.5,
        goal=">= 0.5x reference req/s, 0 errors",
    ),
    Scenario(
        name="slow",
        title="2 s upstream, 512 conns",
        connections=512,
        duration_s=20,
        upstream_delay_s=2.0,
        goal="512 slow connections held, 0 errors",
    ),
    Scenario(
        name="stream",
        title="stream 20 chunks, 64 conns",
        connections=64,
        duration_s=15,
        stream=True,
        chunks=20,
        min_ratio=0.5,
        goal=">= 0.5x reference req/s, 0 errors",
    ),
)


def select(names: list[str]) -> list[Scenario]:
    by_name = {s.name: s for s in SCENARIOS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; choose from {sorted(by_name)}")
    return [by_name[n] for n in names]
