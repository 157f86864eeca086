"""Turn measurements and verdicts into the Markdown tables, the notes and the JSON results file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from bench.drivers import driver_version
from bench.measure import Measurement
from bench.procs import usable_cores
from bench.scenarios import Scenario
from bench.targets import REPO_DIR, Target
from bench.verdicts import Verdict, fmt, growth_ratio, storage_problem

SATURATED_CPU_PCT = 85.0  # below this, a throughput scenario did not load the target fully
FOREIGN_CPU_PCT = 15.0  # more than this on the target's core (beyond the target's own) spoils the comparison


def representative(runs: list[Measurement]) -> list[Measurement]:
    """One measurement per (scenario, target) over the rounds: the median by req/s (lower median), or the
    last failure if no round succeeded."""
    keys = list(dict.fromkeys((m.scenario, m.target) for m in runs))
    chosen: list[Measurement] = []
    for scenario, target in keys:
        mine = [m for m in runs if (m.scenario, m.target) == (scenario, target)]
        ok = sorted((m for m in mine if m.load is not None), key=lambda m: m.load.rps if m.load else 0.0)
        chosen.append(ok[(len(ok) - 1) // 2] if ok else mine[-1])
    return chosen


def results_table(scenarios: list[Scenario], measurements: list[Measurement]) -> str:
    """Every measurement: throughput, latency, the target's CPU per request and its memory."""
    rows = [
        "| scenario | target | req/s | p50 ms | p99 ms | errors | CPU-ms/req | idle RSS MB | peak RSS MB "
        "| RSS growth / in flight | target CPU % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in scenarios:
        for m in (m for m in measurements if m.scenario == scenario.name):
            if m.load is None:
                rows.append(f"| {scenario.title} | {m.target} | failed |" + " - |" * 8)
                continue
            growth = growth_ratio(scenario, m)
            rows.append(
                f"| {scenario.title} | {m.target} | {fmt(m.load.rps, 1 if scenario.image_bytes else 0)} | "
                f"{fmt(m.load.p50_ms)} | {fmt(m.load.p99_ms)} | {m.load.errors} | "
                f"{fmt(m.cpu_ms_per_req, 2 if scenario.image_bytes else 3)} | {fmt(m.idle_rss_mb)} | "
                f"{fmt(m.peak_rss_mb)} | {'-' if growth is None else f'{growth:.2f}x'} | "
                f"{fmt(m.target_cpu_pct, 0)} |"
            )
    return "\n".join(rows)


def verdict_table(scenarios: list[Scenario], verdicts: list[Verdict]) -> str:
    """One row per judged scenario: the figure its target is about, the target, PASS/FAIL and why."""
    rows = ["| scenario | measured | target | verdict | detail |", "|---|---|---|---|---|"]
    titles = {s.name: s.title for s in scenarios}
    for v in verdicts:
        title = titles[v.scenario] + (" (extra)" if v.extra else "")
        rows.append(f"| {title} | {v.measured or '-'} | {v.goal} | **{v.label}** | {v.reason} |")
    return "\n".join(rows)


def storage_notes(scenarios: list[Scenario], measurements: list[Measurement]) -> list[str]:
    out: list[str] = []
    for scenario in (s for s in scenarios if s.rehost):
        for m in (m for m in measurements if m.scenario == scenario.name and m.load is not None):
            if (problem := storage_problem(scenario, m)) is not None:
                out.append(f"{scenario.name}/{m.target}: {problem}")
    return out


def notes(
    scenarios: list[Scenario], measurements: list[Measurement], load_core: int | None, target_core: int | None
) -> list[str]:
    """Warnings a reader needs before trusting the numbers."""
    out: list[str] = []
    for scenario in scenarios:
        for m in (m for m in measurements if m.scenario == scenario.name):
            where = f"{scenario.name}/{m.target}"
            if m.failure:
                out.append(f"{where} failed: {m.failure}")
                continue
            if m.load and m.load.errors:
                out.append(f"{where}: errors {m.load.error_detail}")
            out += _contention(where, scenario, m, load_core, target_core)
    return out


def _contention(
    where: str, scenario: Scenario, m: Measurement, load_core: int | None, target_core: int | None
) -> list[str]:
    out: list[str] = []
    busy = m.core_busy_pct or {}
    if not scenario.pinned:  # every process floats: only the whole machine's load says anything
        cores = ", ".join(f"{b:.0f}%" for _, b in sorted(busy.items()))
        cpu = f"{m.target_cpu_pct:.0f}%" if m.target_cpu_pct is not None else "-"
        return [f"{where} (unpinned): the cores were {cores} busy, the gateway's processes used {cpu} of one"]
    if target_core is not None and m.target_cpu_pct is not None and target_core in busy:
        foreign = busy[target_core] - m.target_cpu_pct
        if foreign > FOREIGN_CPU_PCT:
            out.append(f"{where}: ~{foreign:.0f}% of the target's core went to other work (noisy machine?)")
    throughput = scenario.min_ratio is not None and scenario.pinned
    if not throughput or m.target_cpu_pct is None or m.target_cpu_pct >= SATURATED_CPU_PCT:
        return out
    load_busy = busy.get(load_core, 0.0) if load_core is not None else 0.0
    cause = f"the load core was {load_busy:.0f}% busy" if load_busy else "the load side may be the bottleneck"
    out.append(f"{where} used only {m.target_cpu_pct:.0f}% of its core ({cause}), so its req/s is a floor")
    return out


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


def run_meta(
    started: dt.datetime,
    driver: str,
    cores: tuple[int | None, int | None],
    targets: Sequence[Target],
    scenarios: Sequence[Scenario],
) -> dict[str, object]:
    """What a reader of a results file needs to know about the run that made it."""
    return {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "revision": git_revision(),
        "driver": driver_version(driver),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {len(usable_cores())} usable cores",
        "cores": {"upstream_and_load": cores[0], "target": cores[1]},
        "targets": {t.name: t.label for t in targets},
        "scenarios": [dataclasses.asdict(s) for s in scenarios],
    }


def write_json(
    path: Path,
    meta: dict[str, object],
    runs: list[Measurement],
    chosen: list[Measurement],
    verdicts: list[Verdict],
) -> None:
    data = {
        "meta": meta,
        "measurements": [m.as_dict() for m in chosen],
        "all_rounds": [m.as_dict() for m in runs],
        "verdicts": [asdict(v) | {"label": v.label} for v in verdicts],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
