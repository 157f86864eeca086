"""The benchmark's verdicts from fixed numbers: every row of the table against what it is compared with,
and the exit code of the combined report."""

from __future__ import annotations

import pytest

from bench.drivers import LoadResult
from bench.measure import Measurement
from bench.runner import exit_code
from bench.scenarios import ALL, MIB, Scenario, select
from bench.verdicts import Verdict, judge

BY_NAME = {s.name: s for s in ALL}


def load(rps: float, errors: int = 0, p99_ms: float = 2.0) -> LoadResult:
    return LoadResult("wrk", int(rps * 10), 10, rps, p50_ms=1, p99_ms=p99_ms, max_ms=p99_ms, errors=errors)


def m(scenario: str, target: str, rps: float, **kw: object) -> Measurement:
    errors = int(kw.pop("errors", 0))  # type: ignore[call-overload]
    p99 = float(kw.pop("p99_ms", 2.0))  # type: ignore[arg-type]
    return Measurement(scenario, target, load=load(rps, errors, p99), **kw)  # type: ignore[arg-type]


def verdict(name: str, *measurements: Measurement) -> bool | None:
    return judge(BY_NAME[name], list(measurements)).passed


def test_chat_targets_are_the_issue_s() -> None:
    ref = m("small-chat", "reference", 1000)
    assert verdict("small-chat", m("small-chat", "gateway", 900), ref) is True
    assert verdict("small-chat", m("small-chat", "gateway", 899), ref) is False
    assert verdict("small-chat", m("small-chat", "gateway", 1200, errors=1), ref) is False  # fast, not clean
    assert verdict("small-chat", m("small-chat", "gateway", 900)) is None  # nothing to compare with
    ref = m("stream-chat", "reference", 1000)
    assert verdict("stream-chat", m("stream-chat", "gateway", 950), ref) is True
    assert verdict("stream-chat", m("stream-chat", "gateway", 940), ref) is False


def test_slow_chat_compares_the_latency_added_to_the_2_s_upstream() -> None:
    ref = m("slow-chat", "reference", 250, p99_ms=2120)  # +120 ms
    assert verdict("slow-chat", m("slow-chat", "gateway", 250, p99_ms=2180), ref) is True  # +180: 1.5x
    assert verdict("slow-chat", m("slow-chat", "gateway", 250, p99_ms=2370), ref) is False  # +370: 3.1x
    figure = judge(BY_NAME["slow-chat"], [m("slow-chat", "gateway", 250, p99_ms=2370), ref]).measured
    assert figure == "p99 +370 ms vs +120 ms: 3.08x"
    assert verdict("slow-chat", m("slow-chat", "gateway", 250, p99_ms=2180, errors=2), ref) is False


def test_16mb_pass_through_needs_req_s_and_peak_rss() -> None:
    ref = m("pass-16mb", "reference", 10, peak_rss_mb=186.0)
    assert verdict("pass-16mb", m("pass-16mb", "gateway", 8, peak_rss_mb=279.0), ref) is True
    assert verdict("pass-16mb", m("pass-16mb", "gateway", 8, peak_rss_mb=283.0), ref) is False  # 1.52x
    assert verdict("pass-16mb", m("pass-16mb", "gateway", 7.9, peak_rss_mb=200.0), ref) is False


def uploaded(
    scenario: str, target: str, rps: float, mib: int, puts: int | None = None, growth_mb: float = 80.0
) -> Measurement:
    counted = int(rps * 10) + 1 if puts is None else puts
    storage = {"puts": counted, "min_put_bytes": mib * MIB, "max_put_bytes": mib * MIB}
    return m(scenario, target, rps, storage=storage, idle_rss_mb=100.0, peak_rss_mb=100.0 + growth_mb)


def test_rehost_is_compared_with_the_bare_pass_through() -> None:
    passed = m("pass-16mb", "reference", 10)
    baseline = uploaded("rehost-16mb", "baseline", 20, 16)  # for information only
    assert verdict("rehost-16mb", uploaded("rehost-16mb", "gateway", 5, 16), passed, baseline) is True
    assert verdict("rehost-16mb", uploaded("rehost-16mb", "gateway", 4.9, 16), passed, baseline) is False
    assert verdict("rehost-16mb", uploaded("rehost-16mb", "gateway", 6, 16, puts=3), passed) is False
    assert verdict("rehost-16mb", uploaded("rehost-16mb", "gateway", 6, 16), baseline) is None
    reason = judge(
        BY_NAME["rehost-16mb"], [uploaded("rehost-16mb", "gateway", 5, 16), passed, baseline]
    ).reason
    assert "0.25x the re-hosting baseline" in reason


def test_rehost_1mb_keeps_the_baseline_goals() -> None:
    base = uploaded("rehost-1mb", "baseline", 100, 1)
    assert verdict("rehost-1mb", uploaded("rehost-1mb", "gateway", 80, 1, growth_mb=40), base) is True
    assert verdict("rehost-1mb", uploaded("rehost-1mb", "gateway", 80, 1, growth_mb=48), base) is False  # 3x
    assert verdict("rehost-1mb", uploaded("rehost-1mb", "gateway", 79, 1, growth_mb=40), base) is False
    assert BY_NAME["rehost-1mb"].max_rss_growth == 3.0 and BY_NAME["rehost-1mb"].extra


def test_gemini_rows_compare_with_the_pass_through_of_the_same_answer() -> None:
    ref = m("gemini-4k", "reference", 10)
    assert verdict("gemini-4k", m("gemini-4k", "gateway", 8), ref) is True
    rehost = uploaded("gemini-4k-rehost", "gateway", 5, 20)
    assert verdict("gemini-4k-rehost", rehost, ref) is True
    assert verdict("gemini-4k-rehost", uploaded("gemini-4k-rehost", "gateway", 4, 20), ref) is False


def test_scaling_compares_two_workers_with_one() -> None:
    one = m("scaling-1w", "gateway", 1000)
    assert verdict("scaling-2w", m("scaling-2w", "gateway", 1600), one) is True
    assert verdict("scaling-2w", m("scaling-2w", "gateway", 1500), one) is False
    assert not BY_NAME["scaling-1w"].judged and not BY_NAME["scaling-1w"].pinned
    assert BY_NAME["scaling-2w"].workers == 2 and not BY_NAME["scaling-2w"].pinned


def test_selecting_a_row_brings_what_it_is_compared_with() -> None:
    names = [s.name for s in select(["rehost-16mb", "scaling-2w"])]
    assert names == ["pass-16mb", "rehost-16mb", "scaling-1w", "scaling-2w"]
    with pytest.raises(ValueError):
        select(["small-chat"], pool=tuple(s for s in ALL if s.image_bytes))


def test_only_missed_targets_of_the_table_fail_the_run() -> None:
    def v(passed: bool | None, extra: bool = False) -> Verdict:
        return Verdict("x", "goal", None, passed, "", extra=extra)

    assert exit_code([v(True), v(None), v(False, extra=True)]) == 0
    assert exit_code([v(True), v(False)]) == 1


def test_every_scenario_has_a_target_or_is_a_point_of_comparison() -> None:
    by_name: dict[str, Scenario] = BY_NAME
    for s in ALL:
        assert s.goal or not s.judged, s.name
        if s.versus is not None:
            assert s.versus_target in by_name[s.versus].targets, s.name
