"""Per-token request-rate (requests per minute) and concurrency limits, kept in process."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from gateway.domain import Caller
from gateway.errors import RateLimited


class Limiter:
    """A fixed one-minute window per token, and a count of requests in flight per token."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[int, int]] = {}
        self._in_flight: dict[str, int] = {}

    def acquire(self, caller: Caller) -> bool:
        """Count one request; raise RateLimited when over a limit. True if release() is owed.

        Both limits are checked before either is counted, so a refused request costs nothing.
        """
        window = start = count = 0
        if caller.rpm_limit is not None:
            now = self._clock()
            window = int(now // 60)
            start, count = self._windows.get(caller.token_id, (window, 0))
            if start != window:
                start, count = window, 0
            if count >= caller.rpm_limit:
                retry = max(1, math.ceil((window + 1) * 60 - now))
                raise RateLimited(
                    f"Rate limit reached: {caller.rpm_limit} requests per minute.",
                    headers={"Retry-After": str(retry)},
                )
        in_flight = self._in_flight.get(caller.token_id, 0)
        if caller.max_concurrency is not None and in_flight >= caller.max_concurrency:
            raise RateLimited(
                f"Concurrency limit reached: {caller.max_concurrency} requests in flight.",
                headers={"Retry-After": "1"},
            )
        if caller.rpm_limit is not None:
            self._windows[caller.token_id] = (start, count + 1)
        if caller.max_concurrency is None:
            return False
        self._in_flight[caller.token_id] = in_flight + 1
        return True

    def release(self, caller: Caller) -> None:
        left = self._in_flight.get(caller.token_id, 1) - 1
        if left > 0:
            self._in_flight[caller.token_id] = left
        else:
            self._in_flight.pop(caller.token_id, None)
