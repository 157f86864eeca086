"""What every benchmark command does: parse the common flags, measure every scenario on its targets, judge,
print the tables and write the JSON (bench/chat.py, bench/images.py and `python -m bench` share it)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
from pathlib import Path

from bench import report
from bench.drivers import choose_driver, driver_version
from bench.measure import Settings, run_rounds
from bench.procs import install_signal_handlers, placement
from bench.profile import PROFILES_DIR
from bench.scenarios import Scenario, select
from bench.targets import make_targets
from bench.verdicts import Verdict, judge

RESULTS_DIR = Path(__file__).resolve().parent / "results"
QUICK_CHAT_S, QUICK_IMAGES_S, QUICK_WARMUP_S, WARMUP_S = 3.0, 4.0, 1.0, 3.0


@dataclasses.dataclass(frozen=True)
class Command:
    name: str  # results file prefix
    heading: str
    pool: tuple[Scenario, ...]  # the scenarios it may run (all by default)
    targets: str  # default --targets
    self_test: str  # the proxy `--gateway-impl` may seat as the gateway
    doc: str


def parse_args(command: Command, argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=command.doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = ",".join(s.name for s in command.pool)
    p.add_argument("--quick", action="store_true", help="smoke run: 3 s (chat) or 4 s (images) per scenario")
    p.add_argument("--rounds", type=int, default=1, help="repeat everything; report the median round")
    p.add_argument("--duration", type=float, help="seconds of measured load per scenario (default 15/20)")
    p.add_argument("--warmup", type=float, help=f"seconds of warm-up load (default {WARMUP_S:.0f})")
    p.add_argument("--scenarios", default=names, help=f"comma list of {names}")
    p.add_argument("--targets", default=command.targets, help=f"comma list of {command.targets}")
    p.add_argument(
        "--gateway-impl",
        choices=("gateway", command.self_test),
        default="gateway",
        help=f"'{command.self_test}' seats that proxy as the gateway: a harness self-test (ratios ~1.0)",
    )
    p.add_argument(
        "--chunk-interval",
        type=float,
        default=0.0,
        help="seconds between the upstream's stream events (default 0: a whole stream in one write)",
    )
    p.add_argument("--driver", choices=("auto", "wrk", "python"), default="auto", help="auto: wrk if on PATH")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout of the load driver, s")
    p.add_argument("--python", default=sys.executable, help="interpreter for the targets and helpers")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores with taskset")
    p.add_argument("--billing", action="store_true", help="price the models and give the token a quota")
    p.add_argument(
        "--profile",
        nargs="?",
        const="all",
        default="",
        help="py-spy flame graphs of the gateway during these scenarios' measured load (comma list; "
        "no value: every scenario run), written to --profile-dir/<scenario>.svg",
    )
    p.add_argument("--profile-dir", type=Path, default=PROFILES_DIR)
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


def plan(command: Command, args: argparse.Namespace) -> list[Scenario]:
    scenarios = select([n.strip() for n in args.scenarios.split(",") if n.strip()], command.pool)
    if args.chunk_interval:
        scenarios = [
            dataclasses.replace(s, chunk_interval_s=args.chunk_interval) if s.stream else s for s in scenarios
        ]
    out = []
    for s in scenarios:
        duration = args.duration
        if duration is None and args.quick:
            duration = QUICK_IMAGES_S if s.image_bytes else QUICK_CHAT_S
        if duration is not None:  # a slow upstream needs room for a couple of round trips per connection
            s = dataclasses.replace(s, duration_s=max(duration, 2 * s.upstream_delay_s + 1))
        out.append(s)
    return out


def profiled(args: argparse.Namespace, scenarios: list[Scenario]) -> frozenset[str]:
    if args.profile == "all":
        return frozenset(s.name for s in scenarios)
    names = frozenset(n.strip() for n in args.profile.split(",") if n.strip())
    if unknown := names - {s.name for s in scenarios}:
        raise SystemExit(f"--profile names scenarios this run does not measure: {sorted(unknown)}")
    return names


def main(command: Command, argv: list[str] | None = None) -> int:
    """Measure every scenario on every target, print the tables, write the JSON; 1 if a verdict failed."""
    args = parse_args(command, argv)
    install_signal_handlers()
    scenarios = plan(command, args)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    targets = make_targets(names, args.gateway_impl, billing=args.billing)
    warmup = args.warmup if args.warmup is not None else (QUICK_WARMUP_S if args.quick else WARMUP_S)
    driver = choose_driver(args.driver)
    upstream_cpu, target_cpu = placement(args.no_pin)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    log_dir = args.results_dir / f"{command.name}-{stamp}"
    settings = Settings(
        driver, warmup, args.timeout, args.python, upstream_cpu, target_cpu, log_dir,
        profile=profiled(args, scenarios), profile_dir=args.profile_dir,
    )  # fmt: skip
    print(
        f"driver: {driver_version(driver)}; cores: load {upstream_cpu}, target {target_cpu}", file=sys.stderr
    )

    rounds = max(1, args.rounds)
    runs = run_rounds(scenarios, targets, settings, rounds)
    measurements = report.representative(runs)
    verdicts = [judge(s, measurements) for s in scenarios if s.judged]
    meta = report.run_meta(started, driver, (upstream_cpu, target_cpu), targets, scenarios)
    meta |= {"warmup_s": warmup, "rounds": rounds, "logs": str(log_dir), "profiled": sorted(settings.profile)}
    json_path = args.results_dir / f"{command.name}-{stamp}.json"
    report.write_json(json_path, meta, runs, measurements, verdicts)
    print(f"\n## {command.heading}, {meta['started']} ({meta['revision']}, {meta['driver']})\n")
    print(report.results_table(scenarios, measurements))
    print()
    print(report.verdict_table(scenarios, verdicts))
    notes = report.notes(scenarios, measurements, upstream_cpu, target_cpu)
    if settings.profile:
        notes.append(f"profiled with py-spy (numbers a little lower): {', '.join(sorted(settings.profile))}")
    for note in notes + report.storage_notes(scenarios, measurements):
        print(f"\n- {note}")
    print(f"\nJSON: {json_path}\nlogs: {log_dir}")
    return exit_code(verdicts)


def exit_code(verdicts: list[Verdict]) -> int:
    """1 if a target of the table was missed; extra rows are reported, not counted."""
    return 1 if any(v.passed is False and not v.extra for v in verdicts) else 0


def entry(command: Command) -> None:
    try:
        sys.exit(main(command))
    except KeyboardInterrupt:  # the children were stopped on the way out
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
