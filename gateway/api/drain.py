"""Graceful shutdown: SIGTERM first drains this process, then lets the server stop as usual.

uvicorn on its own closes the listening socket at once on SIGTERM, so a load balancer's readiness probe
only meets refused connections. Here SIGTERM starts a drain instead: the process keeps listening,
`/readyz` answers 503 at once, every new request (but the probes and `/metrics`) gets 503
`server_shutting_down`, and the requests in flight run on. When none is left, or once
`server.shutdown_grace_seconds` have passed, the server's own SIGTERM handler runs: uvicorn stops
listening, and the lifespan stops the job runner and flushes the usage records. With `--workers N` the
supervisor passes SIGTERM on to every worker, and each drains on its own.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("gateway.shutdown")


class Drain:
    def __init__(self, grace_seconds: float) -> None:
        self.grace = grace_seconds
        self.draining = False
        self.inflight = 0
        self._since: float | None = None
        self._idle: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._installed: Callable[[int, FrameType | None], None] | None = None
        self._previous: Any = None

    def enter(self) -> None:
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1
        if self.inflight <= 0 and self._idle is not None:
            self._idle.set()

    def remaining(self) -> float:
        """Seconds left of the grace (all of it before any SIGTERM)."""
        if self._since is None:
            return self.grace
        return max(0.0, self._since + self.grace - time.monotonic())

    def install(self) -> bool:
        """Put the drain in front of the current SIGTERM handler; only the main thread can."""
        if threading.current_thread() is not threading.main_thread():
            return False
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(sig: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(self.begin, lambda: _chain(previous, sig, frame))

        self._previous, self._installed = previous, on_sigterm
        signal.signal(signal.SIGTERM, on_sigterm)
        return True

    def uninstall(self) -> None:
        if self._installed is not None and signal.getsignal(signal.SIGTERM) is self._installed:
            signal.signal(signal.SIGTERM, self._previous)
        self._installed = None

    def begin(self, then: Callable[[], None]) -> None:
        """Start draining; `then` (the server's own shutdown) runs when nothing is in flight."""
        if self.draining:
            return
        self.draining = True
        self._since = time.monotonic()
        self._idle = asyncio.Event()
        if self.inflight <= 0:
            self._idle.set()
        log.warning("SIGTERM: draining %d request(s) in flight (up to %.0f s); new requests get 503",
                    self.inflight, self.grace)  # fmt: skip
        self._task = asyncio.get_running_loop().create_task(self._finish(self._idle, then))

    async def _finish(self, idle: asyncio.Event, then: Callable[[], None]) -> None:
        try:
            await asyncio.wait_for(idle.wait(), self.grace)
        except TimeoutError:
            log.error("shutdown grace is over with %d request(s) still in flight", self.inflight)
        then()


def _chain(previous: Any, sig: int, frame: FrameType | None) -> None:
    """Hand the signal to whoever had it before (uvicorn's handler: stop serving)."""
    if callable(previous):
        previous(sig, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)
