"""Verdicts and Markdown tables of the images re-hosting benchmark: throughput against the baseline proxy,
the gateway's peak RSS growth against the image bytes in flight, and the uploads the fake S3 counted."""

from __future__ import annotations

from bench.measure import Measurement
from bench.report import Verdict, find, fmt, ratio
from bench.scenarios import MIB, Scenario

GATEWAY, BASELINE = "gateway", "baseline"


def in_flight_mb(scenario: Scenario) -> float:
    """Image bytes in flight at full load: one image per connection."""
    return scenario.bytes_in_flight / MIB


def rss_growth_mb(m: Measurement) -> float | None:
    """Peak RSS over the process life minus the RSS right after start-up."""
    if m.peak_rss_mb is None or m.idle_rss_mb is None:
        return None
    return m.peak_rss_mb - m.idle_rss_mb


def growth_ratio(scenario: Scenario, m: Measurement) -> float | None:
    growth = rss_growth_mb(m)
    return None if growth is None or not scenario.bytes_in_flight else growth / in_flight_mb(scenario)


def storage_problem(scenario: Scenario, m: Measurement) -> str | None:
    """Every answered request must have uploaded the whole image once (more when requests were cut off)."""
    s, load, warmup = m.storage, m.load, m.warmup
    if s is None or load is None:
        return "no upload counts from the fake S3"
    answered = load.requests + (warmup.requests if warmup else 0) + 1  # + the sanity request
    if s.get("puts", 0) < answered:
        return f"{s.get('puts', 0)} uploads for {answered} answers"
    if s.get("min_put_bytes") != scenario.image_bytes or s.get("max_put_bytes") != scenario.image_bytes:
        sizes = f"{s.get('min_put_bytes')}..{s.get('max_put_bytes')}"
        return f"uploads of {sizes} bytes, expected {scenario.image_bytes}"
    return None


def judge(scenario: Scenario, measurements: list[Measurement]) -> Verdict:
    gw = find(measurements, scenario.name, GATEWAY)
    base = find(measurements, scenario.versus or scenario.name, BASELINE)
    r = ratio(gw, base)

    def verdict(passed: bool | None, reason: str) -> Verdict:
        return Verdict(scenario.name, scenario.goal, r, passed, reason)

    if gw is None:
        return verdict(None, "gateway not measured")
    if gw.load is None:
        return verdict(False, f"gateway failed: {(gw.failure or '').splitlines()[0][:160]}")
    if gw.load.errors or not gw.load.requests:
        return verdict(False, f"gateway: {gw.load.errors} errors, {gw.load.requests} requests")
    if (problem := storage_problem(scenario, gw)) is not None:
        return verdict(False, f"gateway: {problem}")
    reasons: list[str] = []
    passed = True
    growth = growth_ratio(scenario, gw)
    if scenario.max_rss_growth is not None:
        ok = growth is not None and growth < scenario.max_rss_growth
        passed &= ok
        sign = "<" if ok else ">="
        reasons.append(f"RSS growth {fmt(growth, 2)}x bytes in flight ({sign} {scenario.max_rss_growth}x)")
    if scenario.min_ratio is not None:
        if base is None or base.load is None or base.load.errors or r is None:
            reasons.append(
                f"no valid {scenario.versus or scenario.name} baseline measurement to compare req/s with"
            )
            return verdict(False if not passed else None, "; ".join(reasons))
        ok = r >= scenario.min_ratio
        passed &= ok
        of = f"the {scenario.versus} baseline's" if scenario.versus else "baseline"
        reasons.append(f"{r:.2f}x {of} req/s ({'>=' if ok else '<'} {scenario.min_ratio}x)")
    return verdict(passed, "; ".join(reasons))


def results_table(scenarios: list[Scenario], measurements: list[Measurement]) -> str:
    rows = [
        "| scenario | target | req/s | p50 ms | p99 ms | errors | CPU-ms/req | idle RSS MB | peak RSS MB "
        "| RSS growth MB | in flight MB | growth / in flight | target CPU % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in scenarios:
        for m in (m for m in measurements if m.scenario == scenario.name):
            if m.load is None:
                rows.append(f"| {scenario.title} | {m.target} | failed |" + " - |" * 10)
                continue
            rows.append(
                f"| {scenario.title} | {m.target} | {fmt(m.load.rps, 1)} | {fmt(m.load.p50_ms)} | "
                f"{fmt(m.load.p99_ms)} | {m.load.errors} | {fmt(m.cpu_ms_per_req, 2)} | "
                f"{fmt(m.idle_rss_mb)} | {fmt(m.peak_rss_mb)} | {fmt(rss_growth_mb(m))} | "
                f"{fmt(in_flight_mb(scenario), 0)} | {fmt(growth_ratio(scenario, m), 2)}x | "
                f"{fmt(m.target_cpu_pct, 0)} |"
            )
    return "\n".join(rows)


def storage_notes(scenarios: list[Scenario], measurements: list[Measurement]) -> list[str]:
    out: list[str] = []
    for scenario in scenarios:
        for m in (m for m in measurements if m.scenario == scenario.name and m.load is not None):
            if (problem := storage_problem(scenario, m)) is not None:
                out.append(f"{scenario.name}/{m.target}: {problem}")
    return out
