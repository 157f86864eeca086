"""What every benchmark command does once its scenarios and targets are chosen: measure, judge, report."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from bench import report
from bench.drivers import choose_driver, driver_version
from bench.measure import Measurement, Settings, run_rounds
from bench.procs import placement
from bench.report import Verdict
from bench.scenarios import Scenario
from bench.targets import Target


@dataclass(frozen=True)
class Kind:
    """One benchmark: its name (results file prefix), heading, and how it judges and tabulates."""

    name: str
    heading: str
    versus: str  # the target the gateway is compared with
    judge: Callable[[Scenario, list[Measurement]], Verdict]
    results_table: Callable[[list[Scenario], list[Measurement]], str]
    extra_notes: Callable[[list[Scenario], list[Measurement]], list[str]] = field(default=lambda s, m: [])


def run(
    args: argparse.Namespace, kind: Kind, scenarios: list[Scenario], targets: list[Target], warmup: float
) -> int:
    """Measure every scenario on every target, print the tables, write the JSON; 1 if a verdict failed."""
    driver = choose_driver(args.driver)
    upstream_cpu, target_cpu = placement(args.no_pin)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    log_dir = args.results_dir / f"{kind.name}-{stamp}"
    settings = Settings(driver, warmup, args.timeout, args.python, upstream_cpu, target_cpu, log_dir)
    print(
        f"driver: {driver_version(driver)}; cores: load {upstream_cpu}, target {target_cpu}", file=sys.stderr
    )

    rounds = max(1, args.rounds)
    runs = run_rounds(scenarios, targets, settings, rounds)
    measurements = report.representative(runs)
    verdicts = [kind.judge(s, measurements) for s in scenarios]
    meta = report.run_meta(started, driver, (upstream_cpu, target_cpu), targets, scenarios)
    meta |= {"warmup_s": warmup, "rounds": rounds, "logs": str(log_dir)}
    json_path = args.results_dir / f"{kind.name}-{stamp}.json"
    report.write_json(json_path, meta, runs, measurements, verdicts)
    print(f"\n## {kind.heading}, {meta['started']} ({meta['revision']}, {meta['driver']})\n")
    print(kind.results_table(scenarios, measurements))
    print()
    print(report.verdict_table(scenarios, verdicts, kind.versus))
    notes = report.notes(scenarios, measurements, upstream_cpu, target_cpu)
    for note in notes + kind.extra_notes(scenarios, measurements):
        print(f"\n- {note}")
    print(f"\nJSON: {json_path}\nlogs: {log_dir}")
    return 1 if any(v.passed is False for v in verdicts) else 0
