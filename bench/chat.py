"""The chat benchmark, in one command: the gateway against a bare reference proxy, measured in the same run.

    .venv/bin/python -m bench.chat            # full run, about 3 minutes
    .venv/bin/python -m bench.chat --quick    # smoke run, about 1 minute

Prints Markdown tables and PASS/FAIL against the targets; writes the same as JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/chat.py`: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report  # noqa: E402
from bench.procs import install_signal_handlers  # noqa: E402
from bench.runner import Kind, run  # noqa: E402
from bench.scenarios import SCENARIOS, Scenario, select  # noqa: E402
from bench.targets import make_targets  # noqa: E402

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
    p.add_argument("--billing", action="store_true", help="price the model and give the token a quota")
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


CHAT = Kind("chat", "Chat benchmark", "reference", report.judge, report.results_table)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    targets = make_targets(names, args.gateway_impl, billing=args.billing)
    warmup = args.warmup if args.warmup is not None else (QUICK_WARMUP_S if args.quick else 3.0)
    return run(args, CHAT, plan(args), targets, warmup)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the children were stopped on the way out
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
