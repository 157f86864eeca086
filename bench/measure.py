"""One measurement: fresh fake upstream (and fake S3 when images are re-hosted) + fresh target, a sanity
request, warm-up, then the measured load; and the rounds of measurements a benchmark runs.

Placement on a 2-core machine: the fake upstream, the fake S3 and the load generator share the first core,
the target has the second to itself (unless the scenario runs unpinned). The target's CPU time and RSS come
from /proc; with `Settings.profile`, py-spy records the gateway during the measured load.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import profile as py_spy
from bench.checks import sanity_check
from bench.drivers import LoadResult, LoadSpec, run_load
from bench.procs import (
    Children,
    core_busy_pct,
    core_times,
    cpu_seconds,
    free_port,
    http_call,
    peak_rss_mb,
    rss_mb,
    wait_until_ready,
)
from bench.scenarios import GATEWAY, Scenario
from bench.targets import (
    BENCH_DIR,
    S3_BUCKET,
    UPSTREAM_KEY,
    Running,
    StartContext,
    Target,
    child_env,
)


@dataclass(frozen=True)
class Settings:
    driver: str
    warmup_s: float
    timeout_s: float
    python: str
    upstream_cpu: int | None  # also runs the fake S3 and the load generator
    target_cpu: int | None
    log_dir: Path
    profile: frozenset[str] = frozenset()  # scenarios whose gateway measurement py-spy records
    profile_dir: Path = py_spy.PROFILES_DIR

    def for_scenario(self, scenario: Scenario) -> Settings:
        """An unpinned scenario runs every process unpinned."""
        return self if scenario.pinned else dataclasses.replace(self, upstream_cpu=None, target_cpu=None)


@dataclass(frozen=True)
class Measurement:
    scenario: str
    target: str
    load: LoadResult | None = None
    warmup: LoadResult | None = None
    cpu_ms_per_req: float | None = None
    target_cpu_pct: float | None = None
    upstream_cpu_pct: float | None = None  # the fake upstream and the fake S3 together
    core_busy_pct: dict[int, float] | None = None  # whole-core load, to spot a saturated load-generator core
    peak_rss_mb: float | None = None
    idle_rss_mb: float | None = None  # VmRSS right after the target first answered /healthz
    storage: dict[str, int] | None = None  # the fake S3's counts at the end (images scenarios)
    sanity: str = ""
    failure: str | None = None
    round: int = 1

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def start_upstream(
    scenario: Scenario, children: Children, settings: Settings, log_dir: Path
) -> tuple[str, int]:
    port = free_port()
    argv = [
        settings.python,
        str(BENCH_DIR / "fake_upstream.py"),
        "--port",
        str(port),
        "--delay",
        str(scenario.upstream_delay_s),
        "--chunks",
        str(scenario.chunks),
        "--chunk-interval",
        str(scenario.chunk_interval_s),
        "--key",
        UPSTREAM_KEY,
        "--image-bytes",
        str(scenario.image_bytes),
    ]
    if scenario.upstream == "gemini":
        argv.append("--gemini")
    log = log_dir / "upstream.log"
    proc = children.spawn(argv, log=log, cpu=settings.upstream_cpu, env=child_env(), cwd=BENCH_DIR.parent)
    wait_until_ready(f"http://127.0.0.1:{port}/healthz", proc, log, timeout=30)
    return f"http://127.0.0.1:{port}/v1", proc.pid


def start_fake_s3(children: Children, settings: Settings, log_dir: Path) -> tuple[str, int]:
    port = free_port()
    argv = [settings.python, str(BENCH_DIR / "fake_s3.py"), "--port", str(port), "--bucket", S3_BUCKET]
    log = log_dir / "fake_s3.log"
    proc = children.spawn(argv, log=log, cpu=settings.upstream_cpu, env=child_env())
    wait_until_ready(f"http://127.0.0.1:{port}/healthz", proc, log, timeout=30)
    return f"http://127.0.0.1:{port}", proc.pid


def storage_stats(s3_url: str) -> dict[str, int]:
    status, _, body = http_call("GET", f"{s3_url}/_stats")
    if status != 200:
        raise RuntimeError(f"fake S3 stats answered HTTP {status}")
    return {k: int(v or 0) for k, v in json.loads(body).items()}


def load_spec(scenario: Scenario, running: Running, duration_s: float, timeout_s: float) -> LoadSpec:
    return LoadSpec(
        url=f"{running.base_url}{scenario.path}",
        connections=scenario.connections,
        duration_s=duration_s,
        timeout_s=timeout_s,
        body=scenario.body(),
        bearer=running.key,
    )


def measure(scenario: Scenario, target: Target, settings: Settings) -> Measurement:
    """Never raises for a target's failure: it is recorded in `failure` and the run goes on."""
    settings = settings.for_scenario(scenario)
    log_dir = settings.log_dir / f"{scenario.name}-{target.name}"
    try:
        with ExitStack() as stack, Children() as children:  # processes stop before the temp dir goes
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
            upstream_base, upstream_pid = start_upstream(scenario, children, settings, log_dir)
            helpers, services = [upstream_pid], {}
            if scenario.rehost:
                services["s3"], s3_pid = start_fake_s3(children, settings, log_dir)
                helpers.append(s3_pid)
            ctx = StartContext(
                children,
                upstream_base,
                settings.target_cpu,
                workdir,
                log_dir,
                settings.python,
                services,
                workers=scenario.workers,
            )
            running = target.start(ctx)
            idle_rss = rss_mb(running.proc.pid)  # before any request: the floor of RSS growth
            sanity = sanity_check(scenario, running, settings.timeout_s)

            def load(duration_s: float, log_name: str) -> LoadResult:
                spec = load_spec(scenario, running, duration_s, settings.timeout_s)
                return run_load(
                    spec,
                    driver=settings.driver,
                    children=children,
                    cpu=settings.upstream_cpu,
                    log=log_dir / log_name,
                    python=settings.python,
                )

            profiler = Profiler(scenario, target.name, children, settings, log_dir)
            m = measured_load(scenario, target.name, running, load, helpers, settings.warmup_s, profiler)
            storage = storage_stats(services["s3"]) if "s3" in services else None
    except Exception as exc:  # one failed measurement must not hide the others
        return Measurement(scenario.name, target.name, failure=f"{type(exc).__name__}: {exc}")
    return dataclasses.replace(m, idle_rss_mb=idle_rss, storage=storage, sanity=sanity)


def measured_load(
    scenario: Scenario,
    target: str,
    running: Running,
    load: Callable[[float, str], LoadResult],
    helper_pids: list[int],
    warmup_s: float,
    profiler: Profiler | None = None,
) -> Measurement:
    """Warm-up, then the measured load, with the target's and the helpers' CPU time read around it."""
    # the slow scenario needs at least one full upstream round trip to warm up
    warmup = load(max(warmup_s, scenario.upstream_delay_s + 1), "warmup.log")
    pid = running.proc.pid
    if profiler is not None:
        profiler.start(pid)
    cores0, cpu0, up0 = core_times(), cpu_seconds(pid), sum(cpu_seconds(p) for p in helper_pids)
    t0 = time.monotonic()
    result = load(scenario.duration_s, "load.log")
    t1 = time.monotonic()
    cores1, cpu1, up1 = core_times(), cpu_seconds(pid), sum(cpu_seconds(p) for p in helper_pids)
    if profiler is not None:
        profiler.finish()
    rss = peak_rss_mb(pid)
    if running.proc.poll() is not None:
        raise RuntimeError(f"target exited with code {running.proc.returncode} during the load")
    busy = cpu1 - cpu0
    return Measurement(
        scenario=scenario.name,
        target=target,
        load=result,
        warmup=warmup,
        cpu_ms_per_req=busy * 1000 / result.requests if result.requests else None,
        target_cpu_pct=100 * busy / (t1 - t0),
        upstream_cpu_pct=100 * (up1 - up0) / (t1 - t0),
        peak_rss_mb=rss,
        core_busy_pct=core_busy_pct(cores0, cores1),
    )


class Profiler:
    """py-spy on the gateway for the measured load, when the settings ask for this scenario's profile."""

    def __init__(
        self, scenario: Scenario, target: str, children: Children, settings: Settings, log_dir: Path
    ) -> None:
        self.enabled = target == GATEWAY and scenario.name in settings.profile
        self.duration_s, self.children, self.cpu = scenario.duration_s, children, settings.upstream_cpu
        self.out = settings.profile_dir / f"{scenario.name}.svg"
        self.log = log_dir / "py-spy.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, pid: int) -> None:
        if self.enabled:
            self._proc = py_spy.start(self.children, pid, self.out, self.duration_s, self.cpu, self.log)

    def finish(self) -> None:
        if self._proc is not None:
            out = py_spy.finish(self.children, self._proc, self.out, self.log)
            print(f"flame graph: {out}", file=sys.stderr, flush=True)


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
                if scenario.targets is not None and target.name not in scenario.targets:
                    continue
                tag = f"[{scenario.name}] round {round_no}/{rounds}"
                print(f"{tag} {target.label}: {scenario.duration_s:.0f} s ...", file=sys.stderr, flush=True)
                m = dataclasses.replace(measure(scenario, target, settings), round=round_no)
                print(f"{tag} {target.name}: {summarize(m)}", file=sys.stderr, flush=True)
                runs.append(m)
    return runs
