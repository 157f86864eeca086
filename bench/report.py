"""Turn measurements into the Markdown tables, the PASS/FAIL verdicts and the JSON results file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.drivers import driver_version
from bench.measure import Measurement
from bench.procs import usable_cores
from bench.scenarios import Scenario
from bench.targets import REPO_DIR, Target

SATURATED_CPU_PCT = 85.0  # below this, a throughput scenario did not load the target fully
FOREIGN_CPU_PCT = 15.0  # more than this on the target's core (beyond the target's own) spoils the comparison


@dataclass(frozen=True)
class Verdict:
    scenario: str
    goal: str
    ratio: float | None
    passed: bool | None  # None: could not be judged (a side was not measured)
    reason: str

    @property
    def label(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def find(measurements: list[Measurement], scenario: str, target: str) -> Measurement | None:
    return next((m for m in measurements if m.scenario == scenario and m.target == target), None)


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


def ratio(gateway: Measurement | None, reference: Measurement | None) -> float | None:
    if gateway is None or reference is None or gateway.load is None or reference.load is None:
        return None
    return gateway.load.rps / reference.load.rps if reference.load.rps > 0 else None


def judge(scenario: Scenario, measurements: list[Measurement]) -> Verdict:
    gw, ref = find(measurements, scenario.name, "gateway"), find(measurements, scenario.name, "reference")
    r = ratio(gw, ref)

    def verdict(passed: bool | None, reason: str) -> Verdict:
        return Verdict(scenario.name, scenario.goal, r, passed, reason)

    if gw is None:
        return verdict(None, "gateway not measured")
    if gw.load is None:
        return verdict(False, f"gateway failed: {(gw.failure or '').splitlines()[0][:160]}")
    if gw.load.errors or not gw.load.requests:
        return verdict(False, f"gateway: {gw.load.errors} errors, {gw.load.requests} requests")
    if scenario.min_ratio is None:
        return verdict(True, f"{scenario.connections} connections, 0 errors, p99 {gw.load.p99_ms:,.0f} ms")
    if ref is None or ref.load is None or ref.load.errors:
        return verdict(None, "no valid reference measurement to compare with")
    assert r is not None
    ok = r >= scenario.min_ratio
    return verdict(ok, f"{r:.2f}x reference req/s ({'>=' if ok else '<'} {scenario.min_ratio}x)")


def results_table(scenarios: list[Scenario], measurements: list[Measurement]) -> str:
    rows = [
        "| scenario | target | req/s | p50 ms | p99 ms | errors | CPU-ms/req | peak RSS MB | target CPU % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in scenarios:
        for m in (m for m in measurements if m.scenario == scenario.name):
            if m.load is None:
                rows.append(f"| {scenario.title} | {m.target} | failed | - | - | - | - | - | - |")
                continue
            rows.append(
                f"| {scenario.title} | {m.target} | {fmt(m.load.rps, 0)} | {fmt(m.load.p50_ms)} | "
                f"{fmt(m.load.p99_ms)} | {m.load.errors} | {fmt(m.cpu_ms_per_req, 3)} | "
                f"{fmt(m.peak_rss_mb)} | {fmt(m.target_cpu_pct, 0)} |"
            )
    return "\n".join(rows)


def verdict_table(scenarios: list[Scenario], verdicts: list[Verdict], versus: str = "reference") -> str:
    rows = [f"| scenario | gateway/{versus} req/s | goal | verdict | detail |", "|---|---:|---|---|---|"]
    titles = {s.name: s.title for s in scenarios}
    for v in verdicts:
        ratio_text = "-" if v.ratio is None else f"{v.ratio:.2f}x"
        rows.append(f"| {titles[v.scenario]} | {ratio_text} | {v.goal} | **{v.label}** | {v.reason} |")
    return "\n".join(rows)


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
    if target_core is not None and m.target_cpu_pct is not None and target_core in busy:
        foreign = busy[target_core] - m.target_cpu_pct
        if foreign > FOREIGN_CPU_PCT:
            out.append(f"{where}: ~{foreign:.0f}% of the target's core went to other work (noisy machine?)")
    if scenario.min_ratio is None or m.target_cpu_pct is None or m.target_cpu_pct >= SATURATED_CPU_PCT:
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
