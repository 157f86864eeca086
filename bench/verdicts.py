"""PASS/FAIL of a scenario from its measurements: the gateway against the measurement it is compared with
(`Scenario.versus` / `versus_target`), on req/s, p99 added latency, peak RSS and RSS growth, plus the
uploads the fake S3 counted when images are re-hosted."""

from __future__ import annotations

from dataclasses import dataclass

from bench.measure import Measurement
from bench.scenarios import BASELINE, GATEWAY, MIB, Scenario


@dataclass(frozen=True)
class Verdict:
    scenario: str
    goal: str
    ratio: float | None  # gateway req/s / the compared measurement's req/s
    passed: bool | None  # None: could not be judged (a side was not measured)
    reason: str
    measured: str = ""  # the figure the goal is about, e.g. "0.93x" or "+142 ms vs +120 ms: 1.18x"
    extra: bool = False  # not one of the targets: not counted in the exit code

    @property
    def label(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def find(measurements: list[Measurement], scenario: str, target: str) -> Measurement | None:
    return next((m for m in measurements if m.scenario == scenario and m.target == target), None)


def ratio(gateway: Measurement | None, other: Measurement | None) -> float | None:
    if gateway is None or other is None or gateway.load is None or other.load is None:
        return None
    return gateway.load.rps / other.load.rps if other.load.rps > 0 else None


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


def added_p99_ms(scenario: Scenario, m: Measurement) -> float | None:
    """p99 latency minus the upstream's own delay: what the proxy adds at the tail."""
    return None if m.load is None else m.load.p99_ms - scenario.upstream_delay_s * 1000


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


def _usable(m: Measurement | None) -> bool:
    return m is not None and m.load is not None and not m.load.errors and m.load.requests > 0


def judge(scenario: Scenario, measurements: list[Measurement]) -> Verdict:
    gw = find(measurements, scenario.name, GATEWAY)
    versus_name = scenario.versus or scenario.name
    other = find(measurements, versus_name, scenario.versus_target)
    r = ratio(gw, other)
    what = (
        scenario.versus_target if versus_name == scenario.name else f"{versus_name} {scenario.versus_target}"
    )

    def verdict(passed: bool | None, reason: str, measured: str = "") -> Verdict:
        return Verdict(scenario.name, scenario.goal, r, passed, reason, measured, scenario.extra)

    if gw is None:
        return verdict(None, "gateway not measured")
    if gw.load is None:
        return verdict(False, f"gateway failed: {(gw.failure or '').splitlines()[0][:160]}")
    if gw.load.errors or not gw.load.requests:
        return verdict(False, f"gateway: {gw.load.errors} errors, {gw.load.requests} requests")
    if scenario.rehost and (problem := storage_problem(scenario, gw)) is not None:
        return verdict(False, f"gateway: {problem}")
    checks: list[tuple[bool | None, str, str]] = []  # (passed, reason, measured figure)
    if scenario.min_ratio is not None:
        checks.append(_rps_check(scenario, r, other, what))
    if scenario.max_added_p99_ratio is not None:
        checks.append(_latency_check(scenario, gw, other, what))
    if scenario.max_peak_rss_ratio is not None:
        checks.append(_rss_check(scenario, gw, other, what))
    if scenario.max_rss_growth is not None:
        growth = growth_ratio(scenario, gw)
        ok = growth is not None and growth < scenario.max_rss_growth
        sign = "<" if ok else ">="
        reason = f"RSS growth {fmt(growth, 2)}x bytes in flight ({sign} {scenario.max_rss_growth}x)"
        checks.append((ok, reason, ""))
    if not checks:
        return verdict(True, f"{scenario.connections} connections, 0 errors, p99 {gw.load.p99_ms:,.0f} ms")
    results = [c[0] for c in checks]
    passed = False if False in results else (None if None in results else True)
    reasons = [c[1] for c in checks]
    baseline = find(measurements, scenario.name, BASELINE)
    if scenario.versus_target != BASELINE and (vs_baseline := ratio(gw, baseline)) is not None:
        reasons.append(f"for information: {vs_baseline:.2f}x the re-hosting baseline's req/s")
    return verdict(passed, "; ".join(reasons), "; ".join(c[2] for c in checks if c[2]))


def _rps_check(
    scenario: Scenario, r: float | None, other: Measurement | None, what: str
) -> tuple[bool | None, str, str]:
    assert scenario.min_ratio is not None
    if not _usable(other) or r is None:
        return None, f"no valid {what} measurement to compare req/s with", ""
    ok = r >= scenario.min_ratio
    return ok, f"{r:.2f}x {what} req/s ({'>=' if ok else '<'} {scenario.min_ratio}x)", f"{r:.2f}x req/s"


def _latency_check(
    scenario: Scenario, gw: Measurement, other: Measurement | None, what: str
) -> tuple[bool | None, str, str]:
    assert scenario.max_added_p99_ratio is not None
    mine = added_p99_ms(scenario, gw)
    if not _usable(other) or other is None or mine is None:
        return None, f"no valid {what} measurement to compare p99 with", f"+{fmt(mine, 0)} ms"
    theirs = added_p99_ms(scenario, other)
    assert theirs is not None
    times = mine / max(theirs, 1.0)  # a reference tail under 1 ms counts as 1 ms
    ok = times <= scenario.max_added_p99_ratio
    figure = f"p99 +{mine:,.0f} ms vs +{theirs:,.0f} ms: {times:.2f}x"
    sign = "<=" if ok else ">"
    return ok, f"p99 added latency {times:.2f}x the {what}'s ({sign} {scenario.max_added_p99_ratio}x)", figure


def _rss_check(
    scenario: Scenario, gw: Measurement, other: Measurement | None, what: str
) -> tuple[bool | None, str, str]:
    assert scenario.max_peak_rss_ratio is not None
    if other is None or other.peak_rss_mb is None or gw.peak_rss_mb is None:
        return None, f"no {what} peak RSS to compare with", ""
    times = gw.peak_rss_mb / other.peak_rss_mb
    ok = times <= scenario.max_peak_rss_ratio
    figure = f"peak RSS {gw.peak_rss_mb:,.0f} MB vs {other.peak_rss_mb:,.0f} MB: {times:.2f}x"
    sign = "<=" if ok else ">"
    return ok, f"peak RSS {times:.2f}x the {what}'s ({sign} {scenario.max_peak_rss_ratio}x)", figure
