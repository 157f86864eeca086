"""The chat benchmark, in one command: the gateway against a bare reference proxy, measured in the same run.

    .venv/bin/python -m bench.chat            # full run, about 3 minutes
    .venv/bin/python -m bench.chat --quick    # smoke run, about 1 minute

Prints Markdown tables and PASS/FAIL against the targets; writes the same as JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):  # run as `python bench/chat.py`: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report  # noqa: E402
from bench.drivers import choose_driver, driver_version  # noqa: E402
from bench.measure import Measurement, Settings, measure  # noqa: E402
from bench.procs import usable_cores  # noqa: E402
from bench.scenarios import SCENARIOS, Scenario, select  # noqa: E402
from bench.targets import REPO_DIR, Target, make_targets  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
QUICK_DURATION_S = 3.0
QUICK_WARMUP_S = 1.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_DURATION_S:.0f} s per scenario")
    p.add_argument("--rounds", type=int, default=1, help="repeat everything; report the median round")
    p.add_argument("--duration", type=float, help="seconds of measured load per scenario (default 15/20/15)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up load before each measurement (default 3)")
    p.add_argument(
        "--scenarios", default=",".join(s.name for s in SCENARIOS), help="comma list: small,slow,stream"
    )
    p.add_argument("--targets", default="gateway,reference", help="comma list: gateway,reference")
    p.add_argument(
        "--gateway-impl",
        choices=("gateway", "reference"),
        default="gateway",
        help="'reference' seats the reference proxy as the gateway: a harness self-test (ratios ~1.0)",
    )
    p.add_argument(
        "--chunk-interval",
        type=float,
        default=0.0,
        help="seconds between the upstream's stream events (default 0: a whole stream in one write)",
    )
    p.add_argument("--driver", choices=("auto", "wrk", "python"), default="auto", help="auto: wrk if on PATH")
    p.add_argument(
        "--timeout", type=float, default=30.0, help="per-request timeout of the load driver, seconds"
    )
    p.add_argument("--python", default=sys.executable, help="interpreter for the targets and helpers")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores with taskset")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> list[Scenario]:
    scenarios = select([n.strip() for n in args.scenarios.split(",") if n.strip()])
    if args.chunk_interval:
        scenarios = [
            dataclasses.replace(s, chunk_interval_s=args.chunk_interval) if s.stream else s for s in scenarios
        ]
    duration = args.duration if args.duration is not None else (QUICK_DURATION_S if args.quick else None)
    if duration is None:
        return scenarios
    # a slow upstream needs room for a couple of round trips per connection
    return [dataclasses.replace(s, duration_s=max(duration, 2 * s.upstream_delay_s + 1)) for s in scenarios]


def placement(no_pin: bool) -> tuple[int | None, int | None]:
    """(core for upstream + load generator, core for the target), or no pinning at all."""
    cores = usable_cores()
    if no_pin or len(cores) < 2 or shutil.which("taskset") is None:
        if not no_pin:
            print("warning: fewer than 2 cores or no taskset; running unpinned", file=sys.stderr)
        return None, None
    return cores[0], cores[1]


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`, which stops the children


def summarize(m: Measurement) -> str:
    if m.load is None:
        return f"FAILED: {m.failure}"
    return (
        f"{m.load.rps:,.0f} req/s, p50 {m.load.p50_ms:.1f} ms, p99 {m.load.p99_ms:.1f} ms, "
        f"{m.load.errors} errors, {m.cpu_ms_per_req or 0:.3f} CPU-ms/req, {m.peak_rss_mb or 0:.0f} MB peak"
    )


def run_rounds(
    scenarios: list[Scenario], targets: list[Target], settings: Settings, rounds: int
) -> list[Measurement]:
    runs: list[Measurement] = []
    for round_no in range(1, rounds + 1):
        for scenario in scenarios:
            # alternate who goes first, so a drift in machine load does not always favour the same target
            for target in targets if round_no % 2 else list(reversed(targets)):
                tag = f"[{scenario.name}] round {round_no}/{rounds}"
                print(f"{tag} {target.label}: {scenario.duration_s:.0f} s ...", file=sys.stderr, flush=True)
                m = dataclasses.replace(measure(scenario, target, settings), round=round_no)
                print(f"{tag} {target.name}: {summarize(m)}", file=sys.stderr, flush=True)
                runs.append(m)
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C must unwind even when started in the background (where SIGINT is inherited as ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # respect nohup
            signal.signal(sig, _raise_exit)
    scenarios = plan(args)
    targets = make_targets([n.strip() for n in args.targets.split(",") if n.strip()], args.gateway_impl)
    driver = choose_driver(args.driver)
    upstream_cpu, target_cpu = placement(args.no_pin)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    warmup = args.warmup if args.warmup is not None else (QUICK_WARMUP_S if args.quick else 3.0)
    log_dir = args.results_dir / stamp
    settings = Settings(driver, warmup, args.timeout, args.python, upstream_cpu, target_cpu, log_dir)
    print(
        f"driver: {driver_version(driver)}; cores: load {upstream_cpu}, target {target_cpu}", file=sys.stderr
    )

    runs = run_rounds(scenarios, targets, settings, max(1, args.rounds))
    measurements = report.representative(runs)
    verdicts = [report.judge(s, measurements) for s in scenarios]
    meta: dict[str, object] = {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "revision": git_revision(),
        "driver": driver_version(driver),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {len(usable_cores())} usable cores",
        "cores": {"upstream_and_load": upstream_cpu, "target": target_cpu},
        "targets": {t.name: t.label for t in targets},
        "scenarios": [dataclasses.asdict(s) for s in scenarios],
        "warmup_s": warmup,
        "rounds": max(1, args.rounds),
        "logs": str(log_dir),
    }
    json_path = args.results_dir / f"chat-{stamp}.json"
    report.write_json(json_path, meta, runs, measurements, verdicts)
    print(f"\n## Chat benchmark, {meta['started']} ({meta['revision']}, {meta['driver']})\n")
    print(report.results_table(scenarios, measurements))
    print()
    print(report.verdict_table(scenarios, verdicts))
    for note in report.notes(scenarios, measurements, upstream_cpu, target_cpu):
        print(f"\n- {note}")
    print(f"\nJSON: {json_path}\nlogs: {log_dir}")
    return 1 if any(v.passed is False for v in verdicts) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the children were stopped on the way out
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
