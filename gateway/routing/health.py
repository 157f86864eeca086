"""Key health (§6.2): cooldowns after 429 or repeated failures, keys disabled after 401/403, channels
switched off at run time, and each key's recent success rate and latency.

Everything is read from process memory, so `available()` never waits for the network. With Redis, what
this process decides about a key is handed to `publish` (the cluster bus) and what other processes
decided arrives through `apply`; consecutive-failure counts and the recent-attempt statistics stay per
process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.cluster.events import ChannelSwitch, HealthEvent, KeyCooldown, KeyDisabled
from gateway.routing.policy import Decision
from gateway.routing.stats import Recent, Summary, summarize
from gateway.settings import RetrySettings

log = logging.getLogger("gateway.routing")

Key = tuple[str, int]


def _no_publish(event: HealthEvent) -> None:
    return None


class Health:
    def __init__(
        self,
        retry: RetrySettings,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._retry = retry
        self._clock = clock  # for local expiry: never jumps
        self._wall = wall  # for what other nodes are told: comparable across machines
        self._cool_until: dict[Key, float] = {}
        self._failures: dict[Key, int] = {}
        self._disabled: set[Key] = set()
        self._off: set[str] = set()  # channels switched off at run time
        self._rr: dict[str, int] = {}
        self._recent: dict[Key, Recent] = {}
        self.publish: Callable[[HealthEvent], None] = _no_publish

    def available(self, channel: str, key_index: int) -> bool:
        if self._off and channel in self._off:
            return False
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

    def success(self, channel: str, key_index: int, duration_ms: int | None = None) -> None:
        key = (channel, key_index)
        self._failures.pop(key, None)
        if duration_ms is not None:
            self._record(key, True, duration_ms)

    def failure(
        self, channel: str, key_index: int, decision: Decision, duration_ms: int | None = None
    ) -> None:
        key = (channel, key_index)
        if duration_ms is not None and decision.health != "none":  # a client's bad request is no key's fault
            self._record(key, False, duration_ms)
        if decision.health == "cooldown":
            self._cool(key, decision.cooldown_seconds)
        elif decision.health == "disable":
            if key not in self._disabled:
                self._disabled.add(key)
                log.error("channel %s key #%d refused our credentials; disabled until reload", *key)
                self.publish(KeyDisabled(channel, key_index))
        elif decision.health == "failure":
            count = self._failures.get(key, 0) + 1
            self._failures[key] = count
            if count >= self._retry.failures_to_cooldown:
                self._failures.pop(key, None)
                self._cool(key, self._retry.failure_cooldown_seconds)

    def _cool(self, key: Key, seconds: float) -> None:
        if seconds > 0:
            self._cool_until[key] = max(self._cool_until.get(key, 0.0), self._clock() + seconds)
            log.warning("channel %s key #%d cooling down for %.0f s", key[0], key[1], seconds)
            self.publish(KeyCooldown(key[0], key[1], self._wall() + seconds))

    def _record(self, key: Key, ok: bool, duration_ms: int) -> None:
        recent = self._recent.get(key)
        if recent is None:
            recent = self._recent[key] = Recent()
        recent.add(ok, duration_ms)

    def apply(self, event: HealthEvent | ChannelSwitch) -> None:
        """What another node decided (or what Redis kept): applied here, never published again."""
        if isinstance(event, KeyCooldown):
            seconds = event.until - self._wall()
            if seconds > 0:
                key = (event.channel, event.key_index)
                self._cool_until[key] = max(self._cool_until.get(key, 0.0), self._clock() + seconds)
        elif isinstance(event, KeyDisabled):
            self._disabled.add((event.channel, event.key_index))
        else:
            self.switch_channel(event.channel, event.enabled)

    def switch_channel(self, channel: str, enabled: bool) -> bool:
        """Switch a channel on or off at run time; True if that changed anything."""
        if enabled == (channel not in self._off):
            return False
        if enabled:
            self._off.discard(channel)
        else:
            self._off.add(channel)
        log.warning("channel %s switched %s at run time", channel, "on" if enabled else "off")
        return True

    def channel_enabled(self, channel: str) -> bool:
        return channel not in self._off

    def reloaded(self, retry: RetrySettings) -> None:
        """The config was re-read: new retry settings, and keys disabled by 401/403 get another chance."""
        self._retry = retry
        self._disabled.clear()

    def state(self, channel: str, key_index: int) -> tuple[str, float | None]:
        """('ok' | 'cooling' | 'disabled', seconds left of a cooldown)."""
        key = (channel, key_index)
        if key in self._disabled:
            return "disabled", None
        until = self._cool_until.get(key)
        if until is not None and until > self._clock():
            return "cooling", until - self._clock()
        return "ok", None

    def stats(self, channel: str, key_indexes: range) -> tuple[Summary, list[Summary]]:
        """Recent attempts of a channel as a whole, and of each of its keys."""
        per_key = [self._recent.get((channel, i)) for i in key_indexes]
        summaries = [summarize(r.entries() if r else ()) for r in per_key]
        whole = summarize(entry for r in per_key if r for entry in r.entries())
        return whole, summaries
