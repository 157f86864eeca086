"""Recent attempts per upstream key (a bounded sliding window): success rate and median latency."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

WINDOW = 100  # attempts kept per key


@dataclass(frozen=True, slots=True)
class Summary:
    attempts: int
    success_rate: float | None  # None when nothing was tried recently
    latency_p50_ms: int | None  # of the successful attempts


class Recent:
    """The last WINDOW attempts of one key: (succeeded, duration in ms)."""

    __slots__ = ("_window",)

    def __init__(self) -> None:
        self._window: deque[tuple[bool, int]] = deque(maxlen=WINDOW)

    def add(self, ok: bool, duration_ms: int) -> None:
        self._window.append((ok, max(duration_ms, 0)))

    def entries(self) -> Iterable[tuple[bool, int]]:
        return self._window


def summarize(entries: Iterable[tuple[bool, int]]) -> Summary:
    items = list(entries)
    if not items:
        return Summary(0, None, None)
    durations = sorted(ms for ok, ms in items if ok)
    successes = len(durations)
    p50 = durations[(len(durations) - 1) // 2] if durations else None
    return Summary(len(items), round(successes / len(items), 4), p50)
