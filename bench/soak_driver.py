"""Load driver of the soak run: a mix of small chat, streamed chat and 1 MiB image requests, either at a
fixed rate (open loop: request i starts at i / rate seconds, whether or not earlier ones have answered, as
wrk2 paces; on at most N connections, a request waiting for one counts the wait in its latency) or as fast
as N connections go (closed loop, to find the peak rate).

The mix repeats every 20 requests: 9 chat, 9 streams, 1 image passed through (`b64_json`), 1 re-hosted
(`url`). A request counts as an error when its status is not 200, its body is not what its kind must
answer (a stream must end with `[DONE]`, an image must come whole or as a URL), or it fails or times out.
Prints one `BENCH_RESULT {json}` line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.aio import drive  # noqa: E402
from bench.load import percentile  # noqa: E402
from bench.scenarios import CHAT_SCENARIOS, IMAGE_SCENARIOS, MIB, SMALL  # noqa: E402

STREAM = next(s for s in CHAT_SCENARIOS if s.stream)
PASS_1MB = next(s for s in IMAGE_SCENARIOS if s.name == "pass-1mb")
REHOST_1MB = next(s for s in IMAGE_SCENARIOS if s.name == "rehost-1mb")
KINDS = {"chat": SMALL, "stream": STREAM, "image-b64": PASS_1MB, "image-url": REHOST_1MB}
MIX: tuple[str, ...] = (("chat", "stream") * 9)[:9] + ("image-b64",) + (("stream", "chat") * 9)[:9]
MIX += ("image-url",)
FELL_BEHIND_S = 1.0  # a request started this much after its time counts as `late`


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: Counter[str] = field(default_factory=Counter)
    late: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


def body_problem(kind: str, body: bytes) -> str | None:
    """Why an answer of status 200 is still not the answer its kind must give (None: it is)."""
    if kind == "stream" and not body.rstrip().endswith(b"data: [DONE]"):
        return "stream_without_done"
    if kind == "image-b64" and (len(body) < MIB or b'"b64_json"' not in body[:200_000]):
        return "image_not_inline"
    if kind == "image-url" and b'"url"' not in body:
        return "image_without_url"
    if kind == "chat" and b'"chat.completion"' not in body:
        return "not_a_completion"
    return None


async def one(session: aiohttp.ClientSession, url: str, kind: str, tally: Tally) -> None:
    scenario = KINDS[kind]
    tally.in_flight += 1
    tally.max_in_flight = max(tally.max_in_flight, tally.in_flight)
    t0 = time.perf_counter()
    try:
        async with session.post(url + scenario.path, data=scenario.body().encode()) as resp:
            body = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.errors[f"{kind}:{type(exc).__name__}"] += 1
        return
    finally:
        tally.in_flight -= 1
    if status != 200:
        tally.errors[f"{kind}:status_{status}"] += 1
    elif (problem := body_problem(kind, body)) is not None:
        tally.errors[f"{kind}:{problem}"] += 1
    else:
        tally.latencies[kind].append(time.perf_counter() - t0)


async def open_loop(
    session: aiohttp.ClientSession, url: str, rate: float, duration: float, tally: Tally
) -> None:
    start = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()
    total = int(rate * duration)
    for i in range(total):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        elif -wait > FELL_BEHIND_S:
            tally.late += 1
        task = asyncio.ensure_future(one(session, url, MIX[i % len(MIX)], tally))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)


async def closed_loop(
    session: aiohttp.ClientSession, url: str, connections: int, duration: float, tally: Tally
) -> None:
    deadline = time.perf_counter() + duration
    counter = iter(range(10**12))

    async def worker() -> None:
        while time.perf_counter() < deadline:
            await one(session, url, MIX[next(counter) % len(MIX)], tally)

    await asyncio.gather(*(worker() for _ in range(connections)))


async def run(args: argparse.Namespace) -> dict[str, object]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {args.key}"}
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    tally = Tally()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        start = time.perf_counter()
        if args.rate:
            await open_loop(session, args.url, args.rate, args.duration, tally)
        else:
            await closed_loop(session, args.url, args.connections, args.duration, tally)
        elapsed = time.perf_counter() - start
    done = sum(len(v) for v in tally.latencies.values())
    per_kind = {}
    for kind, values in tally.latencies.items():
        values.sort()
        per_kind[kind] = {"ok": len(values), "p50_ms": percentile(values, 50) * 1000}
        per_kind[kind]["p99_ms"] = percentile(values, 99) * 1000
    return {
        "mode": "open" if args.rate else "closed",
        "rate": args.rate,
        "duration_s": round(elapsed, 3),
        "ok": done,
        "rps": done / elapsed if elapsed > 0 else 0.0,
        "errors": sum(tally.errors.values()),
        "error_detail": dict(tally.errors),
        "late": tally.late,
        "max_in_flight": tally.max_in_flight,
        "kinds": per_kind,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="the gateway's base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--key", required=True)
    p.add_argument("--rate", type=float, default=0.0, help="requests/s (open loop); 0: closed loop")
    p.add_argument(
        "--connections",
        type=int,
        default=32,
        help="connections (closed loop: concurrent requests; open loop: a request waits for a free one)",
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout, seconds")
    args = p.parse_args(argv)
    return drive(run(args))


if __name__ == "__main__":
    sys.exit(main())
