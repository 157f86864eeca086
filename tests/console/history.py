"""A week of earlier traffic for the browser tests' gateway, so the overview has days and hours to draw.

The records are written straight into the gateway's database (as its usage writer would have); the
requests the tests make themselves go through the gateway with the OpenAI SDK. Seeded: the same week
every run.
"""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from gateway.db import repositories as repo
from gateway.db.session import create_engine, create_sessionmaker
from gateway.domain import Attempt, Usage, UsageRecord
from gateway.settings import DatabaseSettings

# model -> (channel, price in micro-USD per image by quality, the sizes asked for)
MODELS = {
    "gpt-image-1": (
        "primary",
        {"low": 11_000, "medium": 42_000, "high": 167_000},
        ["1024x1024", "1536x1024"],
    ),
    "gemini-2.5-flash-image": ("economy", {None: 39_000}, ["1024x1024"]),
    "dall-e-3": ("primary", {"standard": 40_000, "hd": 80_000}, ["1024x1024"]),
}
BUSY_HOURS = [1, 1, 1, 1, 1, 2, 3, 4, 6, 8, 9, 9, 8, 9, 9, 8, 7, 6, 4, 3, 2, 2, 1, 1]  # UTC traffic shape


def _record(rng: random.Random, i: int, when: datetime, token: tuple[str, str]) -> UsageRecord:
    token_id, group = token
    model = (
        rng.choices(list(MODELS), weights=[5, 4, 1])[0] if group == "default" else "gemini-2.5-flash-image"
    )
    channel, prices, sizes = MODELS[model]
    quality = rng.choice(list(prices))
    ok = rng.random() > 0.05
    count = rng.choice([1, 1, 1, 2, 4]) if ok else 0
    unit = prices[quality] // (2 if group == "economy" else 1)
    return UsageRecord(
        request_id=f"hist-{i:04d}",
        created_at=when,
        token_id=token_id,
        group=group,
        endpoint="/v1/images/generations",
        model=model,
        stream=False,
        upstream_model=model,
        channel=channel,
        attempts=[Attempt(channel, 0, 200 if ok else 502, 900)],
        status="success" if ok else "failed",
        http_status=200 if ok else 502,
        error_code=None if ok else "upstream_error",
        latency_ms=rng.randint(4_000, 30_000),
        usage=Usage(),
        image_count=count,
        image_size=rng.choice(sizes),
        image_quality=quality,
        unit_price_micro_usd=unit,
        cost_micro_usd=unit * count,
    )


def week_of_records(tokens: list[tuple[str, str]], now: datetime, count: int = 420) -> list[UsageRecord]:
    """`count` records over the 7 days before `now` (none later), busier in working hours."""
    rng = random.Random(20260301)
    out: list[UsageRecord] = []
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=7)
    while len(out) < count:
        when = start + timedelta(
            days=rng.randrange(8),
            hours=rng.choices(range(24), weights=BUSY_HOURS)[0],
            minutes=rng.randrange(60),
        )
        if start <= when < now - timedelta(minutes=5):
            token = rng.choices(tokens, weights=[5, 3, 2][: len(tokens)])[0]
            out.append(_record(rng, len(out), when, token))
    return sorted(out, key=lambda r: r.created_at)


def insert(database_url: str, records: list[UsageRecord]) -> None:
    async def work() -> None:
        engine = create_engine(DatabaseSettings(url=database_url))
        try:
            async with create_sessionmaker(engine).begin() as session:
                await repo.insert_usage_records(session, records)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(max_workers=1) as pool:  # a test's own event loop may be running here
        pool.submit(asyncio.run, work()).result()


def now() -> datetime:
    return datetime.now(UTC)
