"""Process setup shared by the benchmark's servers and load driver: file-descriptor limit and event loop."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Callable


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
