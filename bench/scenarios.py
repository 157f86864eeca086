"""The benchmarks' scenarios: what load, what upstream behaviour, which targets, and what the gateway must
achieve against what.

`CHAT_SCENARIOS` (bench/chat.py), `IMAGE_SCENARIOS` (bench/images.py), `SCALING_SCENARIOS`; `ALL` is the
table of the whole benchmark (`python -m bench`), in the order it is reported.
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
GATEWAY, REFERENCE, BASELINE = "gateway", "reference", "baseline"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    connections: int
    duration_s: float
    targets: tuple[str, ...] = (GATEWAY, REFERENCE)  # the targets that run it
    upstream_delay_s: float = 0.0
    stream: bool = False
    chunks: int = 20
    chunk_interval_s: float = 0.0  # 0: the upstream sends a whole stream at once
    image_bytes: int = 0  # > 0: an images scenario, the upstream answers a PNG of this size in base64
    upstream: Literal["openai", "gemini"] = "openai"  # gemini: the image arrives as inlineData
    rehost: bool = False  # the client asks response_format=url: the image is stored in (fake) S3
    pinned: bool = True  # False: every process of the measurement runs unpinned (scaling)
    workers: int = 1  # `gateway serve --workers N`
    # what the gateway is compared with: the `versus_target` measurement of scenario `versus` (None: this one)
    versus: str | None = None
    versus_target: str = REFERENCE
    min_ratio: float | None = None  # gateway req/s must reach this fraction of the versus req/s
    max_added_p99_ratio: float | None = None  # (p99 - upstream delay) at most this times the versus one
    max_peak_rss_ratio: float | None = None  # gateway peak RSS at most this times the versus one
    max_rss_growth: float | None = None  # gateway peak RSS growth / image bytes in flight below this
    goal: str = ""
    extra: bool = False  # not a target of the table: reported, not counted in the exit code
    judged: bool = True  # False: measured only as another scenario's point of comparison

    @property
    def path(self) -> str:
        return "/v1/images/generations" if self.image_bytes else "/v1/chat/completions"

    @property
    def bytes_in_flight(self) -> int:
        return self.connections * self.image_bytes

    @property
    def response_format(self) -> str:
        return "url" if self.rehost else "b64_json"

    def body(self) -> str:
        if self.image_bytes:
            model = GEMINI_MODEL if self.upstream == "gemini" else IMAGE_MODEL
            image = {"model": model, "prompt": IMAGE_PROMPT, "response_format": self.response_format}
            return json.dumps(image, separators=(",", ":"))
        payload: dict[str, object] = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
        if self.stream:
            payload["stream"] = True
        return json.dumps(payload, separators=(",", ":"))


SMALL = Scenario(
    name="small-chat",
    title="small chat, 64 conns",
    connections=64,
    duration_s=15,
    min_ratio=0.9,
    goal=">= 0.9x reference req/s (stretch 1.0x), 0 errors",
)
CHAT_SCENARIOS: tuple[Scenario, ...] = (
    SMALL,
    Scenario(
        name="stream-chat",
        title="stream 20 chunks, 64 conns",
        connections=64,
        duration_s=15,
        stream=True,
        chunks=20,
        min_ratio=0.95,
        goal=">= 0.95x reference req/s (stretch 1.0x), 0 errors",
    ),
    Scenario(
        name="slow-chat",
        title="2 s upstream, 512 conns, p99 added latency",
        connections=512,
        duration_s=20,
        upstream_delay_s=2.0,
        max_added_p99_ratio=1.5,
        goal="p99 - 2 s <= 1.5x the reference's, 0 errors",
    ),
)

IMAGE_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="pass-1mb",
        title="1 MiB base64 image passed through, 16 conns",
        connections=16,
        duration_s=15,
        image_bytes=1 * MIB,
        min_ratio=0.8,
        goal=">= 0.8x reference req/s, 0 errors",
    ),
    Scenario(
        name="pass-16mb",
        title="16 MiB base64 image passed through, 4 conns",
        connections=4,
        duration_s=15,
        image_bytes=16 * MIB,
        min_ratio=0.8,
        max_peak_rss_ratio=1.5,
        goal=">= 0.8x reference req/s, peak RSS <= 1.5x the reference's, 0 errors",
    ),
    Scenario(
        name="rehost-16mb",
        title="16 MiB base64 image re-hosted to S3, 4 conns",
        connections=4,
        duration_s=15,
        image_bytes=16 * MIB,
        rehost=True,
        targets=(GATEWAY, BASELINE),
        versus="pass-16mb",
        min_ratio=0.5,
        goal=">= 0.5x the reference's 16 MiB pass-through req/s, every image uploaded, 0 errors",
    ),
    Scenario(
        name="gemini-4k",
        title="Gemini 4K: 20 MiB inlineData passed through, 4 conns",
        connections=4,
        duration_s=15,
        image_bytes=20 * MIB,
        upstream="gemini",
        min_ratio=0.8,
        extra=True,
        goal=">= 0.8x the reference's pass-through of the same answer, 0 errors",
    ),
    Scenario(
        name="gemini-4k-rehost",
        title="Gemini 4K: 20 MiB inlineData re-hosted to S3, 4 conns",
        connections=4,
        duration_s=15,
        image_bytes=20 * MIB,
        upstream="gemini",
        rehost=True,
        targets=(GATEWAY,),
        versus="gemini-4k",
        min_ratio=0.5,
        extra=True,
        goal=">= 0.5x the reference's Gemini 4K pass-through req/s, every image uploaded, 0 errors",
    ),
    Scenario(
        name="rehost-1mb",
        title="1 MiB base64 image re-hosted to S3, 16 conns",
        connections=16,
        duration_s=15,
        image_bytes=1 * MIB,
        rehost=True,
        targets=(GATEWAY, BASELINE),
        versus_target=BASELINE,
        min_ratio=0.8,
        max_rss_growth=3.0,
        extra=True,
        goal=">= 0.8x the re-hosting baseline's req/s, RSS growth < 3x bytes in flight, 0 errors",
    ),
)

# One worker against two, both unpinned: with 2 workers on a 2-core machine the load driver and the fake
# upstream cannot have a core of their own, so in both measurements every process floats (bench/README.md).
SCALING_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="scaling-1w",
        title="small chat, 1 worker, unpinned",
        connections=64,
        duration_s=15,
        targets=(GATEWAY,),
        pinned=False,
        judged=False,
    ),
    Scenario(
        name="scaling-2w",
        title="small chat, --workers 2 / 1 worker, unpinned",
        connections=64,
        duration_s=15,
        targets=(GATEWAY,),
        pinned=False,
        workers=2,
        versus="scaling-1w",
        versus_target=GATEWAY,
        min_ratio=1.6,
        goal=">= 1.6x the req/s of one worker, 0 errors",
    ),
)

ALL: tuple[Scenario, ...] = CHAT_SCENARIOS + IMAGE_SCENARIOS + SCALING_SCENARIOS


def select(names: list[str], pool: tuple[Scenario, ...] = ALL) -> list[Scenario]:
    """The named scenarios in the pool's order, plus the ones they are compared with (measured first)."""
    by_name = {s.name: s for s in ALL}
    unknown = [n for n in names if n not in by_name or by_name[n] not in pool]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; choose from {[s.name for s in pool]}")
    wanted = set(names)
    for name in names:
        if (versus := by_name[name].versus) is not None:
            wanted.add(versus)
    return [s for s in ALL if s.name in wanted]
