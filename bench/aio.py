"""Process setup shared by the benchmark's servers and load drivers: file-descriptor limit, event loop,
waiting for SIGTERM/SIGINT or the end of a server's lifetime, and a driver's one result line."""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "  # the line a load driver prints its result on


def raise_nofile_limit() -> None:
    """512 client connections plus as many upstream ones need more than the usual 1024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (as uvicorn uses it), else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def wait_for_stop(name: str, lifetime: float) -> None:
    """Return on SIGTERM or SIGINT, or after `lifetime` seconds (a server never outlives a lost harness)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=lifetime)
    except TimeoutError:
        print(f"{name}: lifetime reached, exiting", file=sys.stderr)


def drive(load: Coroutine[Any, Any, dict[str, Any]]) -> int:
    """A load driver's main: run `load` on the benchmark's loop and print its result on one line."""
    raise_nofile_limit()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        result = runner.run(load)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0
