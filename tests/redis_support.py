"""Redis for the tests that share state between processes: run only with GATEWAY_TEST_REDIS_URL.

Every test gets its own key prefix (`unique_prefix()`), so runs that share one server never see each
other's keys or events; `drop_prefix()` removes a test's keys afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL")
requires_redis = [
    pytest.mark.redis,
    pytest.mark.skipif(
        not REDIS_URL, reason="set GATEWAY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 to run the Redis tests"
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def redis_test(fn: F) -> F:
    """Mark a test `redis` and skip it, saying why, when no test Redis is configured."""
    for mark in requires_redis:
        fn = mark(fn)
    return fn


DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once


def unique_prefix() -> str:
    return f"gwtest:{secrets.token_hex(6)}:"


async def drop_prefix_async(prefix: str) -> None:
    assert REDIS_URL
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def drop_prefix(prefix: str) -> None:
    """From synchronous test code (no running event loop)."""
    asyncio.run(drop_prefix_async(prefix))
