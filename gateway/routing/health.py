"""In-process key health: cooldowns after 429 or repeated failures, keys disabled after 401/403."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.routing.policy import Decision
from gateway.settings import RetrySettings

log = logging.getLogger("gateway.routing")


class Health:
    def __init__(self, retry: RetrySettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._retry = retry
        self._clock = clock
        self._cool_until: dict[tuple[str, int], float] = {}
        self._failures: dict[tuple[str, int], int] = {}
        self._disabled: set[tuple[str, int]] = set()
        self._rr: dict[str, int] = {}

    def available(self, channel: str, key_index: int) -> bool:
        key = (channel, key_index)
        if key in self._disabled:
            return False
        until = self._cool_until.get(key)
        if until is None:
            return True
        if until <= self._clock():
            del self._cool_until[key]
            return True
        return False

    def next_start(self, channel: str) -> int:
        """Round-robin starting key index for a channel."""
        n = self._rr.get(channel, 0)
        self._rr[channel] = n + 1
        return n

    def success(self, channel: str, key_index: int) -> None:
        self._failures.pop((channel, key_index), None)

    def failure(self, channel: str, key_index: int, decision: Decision) -> None:
        key = (channel, key_index)
        if decision.health == "cooldown":
            self._cool(key, decision.cooldown_seconds)
        elif decision.health == "disable":
            self._disabled.add(key)
            log.error("channel %s key #%d refused our credentials; disabled until reload", channel, key_index)
        elif decision.health == "failure":
            count = self._failures.get(key, 0) + 1
            self._failures[key] = count
            if count >= self._retry.failures_to_cooldown:
                self._failures.pop(key, None)
                self._cool(key, self._retry.failure_cooldown_seconds)

    def _cool(self, key: tuple[str, int], seconds: float) -> None:
        if seconds > 0:
            self._cool_until[key] = self._clock() + seconds
            log.warning("channel %s key #%d cooling down for %.0f s", key[0], key[1], seconds)

    def state(self, channel: str, key_index: int) -> tuple[str, float | None]:
        """('ok' | 'cooling' | 'disabled', seconds left of a cooldown)."""
        key = (channel, key_index)
        if key in self._disabled:
            return "disabled", None
        until = self._cool_until.get(key)
        if until is not None and until > self._clock():
            return "cooling", until - self._clock()
        return "ok", None
