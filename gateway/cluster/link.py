"""The Redis connection every shared feature uses, and how an outage is noticed, skipped and logged.

A Redis outage never fails a request: callers catch `REDIS_ERRORS`, report them to `Outage.failed`, and
work per process. `Outage.usable()` then says "skip Redis" for a short back-off, so a dead or
unreachable server costs one timed-out call per back-off, not one per request; and the log says so once
a minute, not once per request. The URL is never logged (it may hold a password).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.settings import RedisSettings

log = logging.getLogger("gateway.cluster")

# What a Redis call may raise when the server is down, slow or gone: never a reason to fail a request.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


class Outage:
    """Whether Redis is believed reachable, with a back-off after a failure and rate-limited logging."""

    def __init__(
        self,
        backoff_seconds: float = 5.0,
        log_every_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff = backoff_seconds
        self._log_every = log_every_seconds
        self._clock = clock
        self._skip_until = 0.0
        self._logged_at = -math.inf
        self.down = False

    def usable(self) -> bool:
        """False for a short while after a failure: callers go per process without trying."""
        return not self.down or self._clock() >= self._skip_until

    def wait_seconds(self) -> float:
        """How long until `usable()` turns true again (0 when it is)."""
        return 0.0 if self.usable() else self._skip_until - self._clock()

    def failed(self, what: str, exc: BaseException) -> None:
        now = self._clock()
        self._skip_until = now + self._backoff
        if not self.down or now - self._logged_at >= self._log_every:
            self._logged_at = now
            log.warning(
                "Redis unavailable (%s: %s: %s); rate limits, cooldowns and broadcasts work per process "
                "until it is back",
                what,
                type(exc).__name__,
                exc,
            )
        self.down = True

    def ok(self) -> None:
        if self.down:
            self.down = False
            log.warning("Redis is reachable again; rate limits, cooldowns and broadcasts are shared again")


class RedisLink:
    """The client for commands (short timeouts, no retries) and a factory for the pub/sub connection."""

    def __init__(self, settings: RedisSettings, outage: Outage | None = None) -> None:
        if not settings.url:
            raise ValueError("redis.url is not set")
        self.url = settings.url
        self.prefix = settings.key_prefix
        self._timeout = settings.timeout_seconds
        # No retries inside redis-py: a failed call falls back to per-process work at once. A burst of
        # requests waits for a free connection (up to the timeout) rather than failing as "too many".
        self.pool = BlockingConnectionPool.from_url(
            self.url,
            socket_connect_timeout=self._timeout,
            socket_timeout=self._timeout,
            retry=Retry(NoBackoff(), 0),
            max_connections=256,
            timeout=self._timeout,
        )
        self.client = Redis(connection_pool=self.pool)
        self.outage = outage or Outage()

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def subscriber(self) -> Redis:
        """A client of its own for pub/sub: a subscription blocks its connection for as long as it lives."""
        client: Redis = Redis.from_url(
            self.url,
            socket_connect_timeout=self._timeout,
            socket_timeout=None,  # waiting for the next message is not a timeout
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            client_name=f"{self.prefix}bus",  # names the subscribers in CLIENT LIST
        )
        return client

    async def close(self) -> None:
        await self.client.aclose()
        await self.pool.disconnect()
