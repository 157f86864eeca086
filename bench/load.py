"""Pure-Python load driver (used when wrk is not installed): N keep-alive connections for a fixed time.

Same counting as wrk: a request counts when its response (any status) is fully read before the deadline;
requests still in flight at the deadline are dropped; errors = non-2xx responses + socket errors/timeouts.
Prints one `BENCH_RESULT {json}` line on stdout. aiohttp client, on uvloop when installed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.aio import drive  # noqa: E402

ERROR_BACKOFF_SECONDS = 0.01  # keeps a refused connection from turning a worker into a hot loop


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    started: int = 0


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def worker(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    deadline: float,
    max_requests: int,
    tally: Tally,
) -> None:
    while time.perf_counter() < deadline and tally.started < max_requests:
        tally.started += 1
        t0 = time.perf_counter()
        try:
            async with session.post(url, data=body) as resp:
                await resp.read()  # streams are read to the end, like any body
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            if time.perf_counter() < deadline:
                tally.errors[type(exc).__name__] += 1
                await asyncio.sleep(ERROR_BACKOFF_SECONDS)
            continue
        t1 = time.perf_counter()
        if t1 > deadline:
            return
        tally.latencies.append(t1 - t0)
        if not 200 <= status < 300:
            tally.errors[f"status_{status}"] += 1


async def run(args: argparse.Namespace) -> dict[str, object]:
    headers = {"Content-Type": "application/json"}
    for raw in args.header:
        name, _, value = raw.partition(":")
        headers[name.strip()] = value.strip()
    connector = aiohttp.TCPConnector(limit=args.connections, limit_per_host=args.connections)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    tally = Tally()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        start = time.perf_counter()
        deadline = start + args.duration
        body = args.body.encode()
        tasks = [
            asyncio.ensure_future(worker(session, args.url, body, deadline, args.max_requests, tally))
            for _ in range(args.connections)
        ]
        _, pending = await asyncio.wait(tasks, timeout=args.duration)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        elapsed = min(time.perf_counter(), deadline) - start
    latencies = sorted(tally.latencies)
    return {
        "driver": "python",
        "requests": len(latencies),
        "duration_s": round(elapsed, 3),
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": (latencies[-1] if latencies else 0.0) * 1000,
        "errors": sum(tally.errors.values()),
        "error_detail": dict(tally.errors),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--duration", type=float, default=10.0, help="seconds")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    p.add_argument("--body", default="{}", help="JSON request body")
    p.add_argument("--header", action="append", default=[], help="extra header 'Name: value' (repeatable)")
    p.add_argument("--max-requests", type=int, default=10_000_000, help="hard cap on requests started")
    args = p.parse_args(argv)
    if args.connections < 1 or args.duration <= 0:
        p.error("--connections and --duration must be positive")
    return drive(run(args))


if __name__ == "__main__":
    sys.exit(main())
