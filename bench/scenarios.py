"""The benchmarks' scenarios: what load, what upstream behaviour, and what the gateway must achieve.

Chat scenarios (`SCENARIOS`, bench/chat.py) and images re-hosting ones (`IMAGE_SCENARIOS`, bench/images.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

MODEL = "bench-model"
PROMPT = "Say hello in one short sentence."
IMAGE_MODEL = "gpt-image-bench"
GEMINI_MODEL = "gemini-bench-image"  # served by a `kind: gemini` channel (generateContent)
IMAGE_PROMPT = "A lighthouse on a rocky coast at dusk, watercolour."
MIB = 1024 * 1024


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
    image_bytes: int = 0  # > 0: an images scenario, the upstream answers a PNG of this size as b64_json
    max_rss_growth: float | None = None  # gateway peak RSS growth / image bytes in flight must stay below
    upstream: Literal["openai", "gemini"] = "openai"  # gemini: the image arrives as inlineData
    targets: tuple[str, ...] | None = None  # the targets that run it (None: all)
    versus: str | None = None  # compare with this scenario's baseline measurement (None: this one's)

    @property
    def path(self) -> str:
        return "/v1/images/generations" if self.image_bytes else "/v1/chat/completions"

    @property
    def bytes_in_flight(self) -> int:
        return self.connections * self.image_bytes

    def body(self) -> str:
        if self.image_bytes:  # the gateway must re-host the upstream's base64 and answer a URL
            model = GEMINI_MODEL if self.upstream == "gemini" else IMAGE_MODEL
            image = {"model": model, "prompt": IMAGE_PROMPT, "response_format": "url"}
            return json.dumps(image, separators=(",", ":"))
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


IMAGE_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="16mb",
        title="16 MB PNG, 4 conns",
        connections=4,
        duration_s=15,
        image_bytes=16 * MIB,
        min_ratio=0.8,
        max_rss_growth=3.0,
        goal=">= 0.8x baseline req/s, RSS growth < 3x bytes in flight, 0 errors",
    ),
    Scenario(
        name="1mb",
        title="1 MB PNG, 16 conns",
        connections=16,
        duration_s=15,
        image_bytes=1 * MIB,
        min_ratio=0.8,
        max_rss_growth=3.0,
        goal=">= 0.8x baseline req/s, RSS growth < 3x bytes in flight, 0 errors",
    ),
    Scenario(
        name="gemini20mb",
        title="Gemini 4K: 20 MB PNG as inlineData, 4 conns",
        connections=4,
        duration_s=15,
        image_bytes=20 * MIB,
        min_ratio=0.5,
        max_rss_growth=3.0,
        upstream="gemini",
        targets=("gateway",),  # the baseline proxy speaks the OpenAI shape only
        versus="16mb",
        goal=">= 0.5x the 16 MB baseline's req/s, RSS growth < 3x bytes in flight, 0 errors",
    ),
)


def select(names: list[str], pool: tuple[Scenario, ...] = SCENARIOS) -> list[Scenario]:
    by_name = {s.name: s for s in pool}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; choose from {sorted(by_name)}")
    return [by_name[n] for n in names]
