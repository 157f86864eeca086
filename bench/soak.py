"""The soak run: mixed chat, streams and 1 MiB images at half the peak rate for 10 minutes, watching the
gateway's memory, file descriptors and upstream connections.

    .venv/bin/python -m bench.soak                     # measure the peak (15 s), then 10 minutes at half
    .venv/bin/python -m bench.soak --minutes 2 --rate 200

Layout as in the benchmark: the gateway (one worker, S3 storage) on its own core; the fake upstream, the
fake S3 and the driver (bench/soak_driver.py, open loop) on the other. Every --interval seconds it samples
the gateway's RSS, open fds and ESTABLISHED connections to the fake upstream and to the fake S3 (bench/
sampler.py). After the warm-up, the verdict: RSS grows less than 10%, fds and connections stay flat, 0
errors, and the driver kept its rate. Writes JSON to bench/results/soak-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as `python bench/soak.py`: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.aio import RESULT_PREFIX  # noqa: E402
from bench.checks import sanity_check  # noqa: E402
from bench.measure import Settings, start_fake_s3, start_upstream  # noqa: E402
from bench.procs import Children, install_signal_handlers, log_tail, placement  # noqa: E402
from bench.runner import RESULTS_DIR  # noqa: E402
from bench.sampler import Sample, sample  # noqa: E402
from bench.soak_driver import KINDS  # noqa: E402
from bench.targets import GatewayTarget, StartContext  # noqa: E402

MAX_RSS_GROWTH = 0.10
FLAT_SLACK = 0.10  # fds and connections: the second half's highest may exceed the first half's by 10% ...
FLAT_SLACK_ABS = 2  # ... plus 2, for the jitter of requests in flight at the moment of a sample
DRIVER_CONNECTIONS = 64  # the driver's connections: requests beyond wait for one (their wait is latency)
MIN_KEPT_RATE = 0.95  # the driver must have completed this share of the requests it was to send
WINDOW = 3  # samples whose median stands for the start and the end


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def window_median(values: list[float], end: bool) -> float:
    part = values[-WINDOW:] if end else values[:WINDOW]
    return float(statistics.median(part))


def judge(samples: list[Sample], warmup_s: float, driver: dict[str, object], expected: int) -> list[Check]:
    """The soak's verdict from its samples after the warm-up and the driver's result."""
    after = [s for s in samples if s.t_s >= warmup_s]
    if len(after) < 2 * WINDOW:
        return [Check("samples", False, f"{len(after)} samples after the warm-up, need {2 * WINDOW}")]
    checks = []
    rss0, rss1 = (
        window_median([s.rss_mb for s in after], False),
        window_median([s.rss_mb for s in after], True),
    )
    growth = rss1 / rss0 - 1
    checks.append(Check("RSS", growth < MAX_RSS_GROWTH, f"{rss0:.1f} -> {rss1:.1f} MB ({growth:+.1%})"))
    series = {"open fds": [float(s.fds) for s in after]}
    for name in after[0].conns:
        series[f"{name} connections"] = [float(s.conns.get(name, 0)) for s in after]
    half = len(after) // 2
    for name, values in series.items():
        # Pools keep their high-water mark (a stall of the machine leaves more connections open, once);
        # a leak keeps climbing: the second half must not reach higher than the first.
        first, second = max(values[:half]), max(values[half:])
        flat = second <= first * (1 + FLAT_SLACK) + FLAT_SLACK_ABS
        detail = f"highest {first:.0f} in the first half, {second:.0f} in the second (start {values[0]:.0f})"
        checks.append(Check(name, flat, detail))
    errors = int(driver.get("errors", 0))  # type: ignore[call-overload]
    checks.append(Check("errors", errors == 0, f"{errors} {driver.get('error_detail') or ''}".strip()))
    ok = int(driver.get("ok", 0))  # type: ignore[call-overload]
    kept = ok >= MIN_KEPT_RATE * expected
    late = driver.get("late", 0)
    checks.append(Check("rate kept", kept, f"{ok:,} of {expected:,} requests answered, {late} started late"))
    return checks


def run_driver(
    children: Children,
    settings: Settings,
    log: Path,
    base_url: str,
    key: str,
    extra: list[str],
    seconds: float,
) -> dict[str, object]:
    argv = [settings.python, str(Path(__file__).with_name("soak_driver.py")), "--url", base_url, "--key", key]
    proc = children.spawn([*argv, *extra], log=log, cpu=settings.upstream_cpu, capture_stdout=True)
    try:
        stdout, _ = proc.communicate(timeout=seconds + 120)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError("the soak driver did not finish in time") from exc
    finally:
        children.stop(proc)
    text = stdout.decode(errors="replace")
    for line in text.splitlines():
        if line.startswith(RESULT_PREFIX):
            result: dict[str, object] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    raise RuntimeError(f"the soak driver printed no result:\n{text[-2000:]}\n{log_tail(log)}")


def sample_until(
    stop: threading.Event, pid: int, ports: dict[str, int], every: float, out: list[Sample]
) -> None:
    t0 = time.monotonic()
    while not stop.is_set():
        out.append(sample(pid, time.monotonic() - t0, ports))
        stop.wait(every)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default 10)")
    p.add_argument("--rate", type=float, help="requests/s (default: half the peak, measured first)")
    p.add_argument("--peak-seconds", type=float, default=15.0, help="length of the peak measurement")
    p.add_argument("--warmup-minutes", type=float, help="samples before this are not judged (default 20%%)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--python", default=sys.executable, help="interpreter for the targets and helpers")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores with taskset")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    upstream_cpu, target_cpu = placement(args.no_pin)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    log_dir = args.results_dir / f"soak-{stamp}"
    settings = Settings("python", 0, 60, args.python, upstream_cpu, target_cpu, log_dir)
    seconds = args.minutes * 60
    warmup_s = args.warmup_minutes * 60 if args.warmup_minutes is not None else 0.2 * seconds
    scenario = KINDS["image-url"]  # the upstream answers chat and 1 MiB images; S3 is up
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp, Children() as children:
        upstream_base, _ = start_upstream(scenario, children, settings, log_dir)
        s3_url, _ = start_fake_s3(children, settings, log_dir)
        ctx = StartContext(
            children, upstream_base, target_cpu, Path(tmp), log_dir, args.python, {"s3": s3_url}
        )
        running = GatewayTarget().start(ctx)
        for kind, s in KINDS.items():
            print(f"sanity {kind}: {sanity_check(s, running, 60)}", file=sys.stderr)
        rate = args.rate
        peak = None
        if rate is None:
            print(
                f"peak: {args.peak_seconds:.0f} s closed loop, 32 connections ...",
                file=sys.stderr,
                flush=True,
            )
            extra = ["--connections", "32", "--duration", str(args.peak_seconds)]
            peak = run_driver(
                children, settings, log_dir / "peak.log", running.base_url, running.key, extra, 0
            )
            rate = float(peak["rps"]) / 2  # type: ignore[arg-type]
        print(f"soak: {rate:.0f} req/s for {args.minutes:g} min ...", file=sys.stderr, flush=True)
        ports = {"upstream": urlsplit(upstream_base).port or 80, "s3": urlsplit(s3_url).port or 80}
        samples: list[Sample] = []
        stop = threading.Event()
        sampler = threading.Thread(
            target=sample_until, args=(stop, running.proc.pid, ports, args.interval, samples), daemon=True
        )
        sampler.start()
        try:
            extra = [
                "--rate",
                f"{rate:.3f}",
                "--duration",
                str(seconds),
                "--connections",
                str(DRIVER_CONNECTIONS),
            ]
            driver = run_driver(
                children, settings, log_dir / "soak.log", running.base_url, running.key, extra, seconds
            )
        finally:
            stop.set()
            sampler.join()
        alive = running.proc.poll() is None
    checks = judge(samples, warmup_s, driver, int(rate * seconds))
    checks.append(Check("gateway alive", alive, "still running at the end" if alive else "exited"))
    return report(args, stamp, rate, peak, driver, samples, warmup_s, checks)


def report(
    args: argparse.Namespace,
    stamp: str,
    rate: float,
    peak: dict[str, object] | None,
    driver: dict[str, object],
    samples: list[Sample],
    warmup_s: float,
    checks: list[Check],
) -> int:
    print(f"\n## Soak, {stamp}: {rate:.0f} req/s for {args.minutes:g} min (warm-up {warmup_s:.0f} s)\n")
    if peak is not None:
        print(f"peak (closed loop, 32 connections): {float(peak['rps']):.0f} req/s")  # type: ignore[arg-type]
    names = list(samples[0].conns) if samples else []
    print("\n| t s | RSS MB | open fds | " + " | ".join(f"{n} conns" for n in names) + " |")
    print("|---:|---:|---:|" + "---:|" * len(names))
    step = max(1, len(samples) // 20)  # about 20 rows
    for s in samples[::step] + ([samples[-1]] if samples and (len(samples) - 1) % step else []):
        conns = " | ".join(str(s.conns[n]) for n in names)
        print(f"| {s.t_s:.0f} | {s.rss_mb:.1f} | {s.fds} | {conns} |")
    print("\n| check | verdict | detail |\n|---|---|---|")
    for c in checks:
        print(f"| {c.name} | **{'PASS' if c.passed else 'FAIL'}** | {c.detail} |")
    kinds: dict[str, dict[str, float]] = driver.get("kinds") or {}  # type: ignore[assignment]
    print("\n| kind | answered | p50 ms | p99 ms |\n|---|---:|---:|---:|")
    for kind, k in kinds.items():
        print(f"| {kind} | {k['ok']:,.0f} | {k['p50_ms']:.1f} | {k['p99_ms']:.1f} |")
    path = args.results_dir / f"soak-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "rate": rate,
        "minutes": args.minutes,
        "warmup_s": warmup_s,
        "peak": peak,
        "driver": driver,
        "samples": [dataclasses.asdict(s) for s in samples],
        "checks": [dataclasses.asdict(c) for c in checks],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nJSON: {path}")
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
