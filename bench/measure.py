"""One measurement: fresh fake upstream + fresh target, a sanity request, warm-up, then the measured load.

Placement on a 2-core machine: the fake upstream and the load generator share the first core, the target
has the second to itself. The target's CPU time and peak RSS come from /proc.
"""

from __future__ import annotations

import json
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.drivers import LoadResult, LoadSpec, run_load
from bench.procs import (
    Children,
    core_busy_pct,
    core_times,
    cpu_seconds,
    free_port,
    http_call,
    peak_rss_mb,
    wait_until_ready,
)
from bench.scenarios import Scenario
from bench.targets import BENCH_DIR, UPSTREAM_KEY, Running, StartContext, Target, child_env


@dataclass(frozen=True)
class Settings:
    driver: str
    warmup_s: float
    timeout_s: float
    python: str
    upstream_cpu: int | None  # also runs the load generator
    target_cpu: int | None
    log_dir: Path


@dataclass(frozen=True)
class Measurement:
    scenario: str
    target: str
    load: LoadResult | None = None
    warmup: LoadResult | None = None
    cpu_ms_per_req: float | None = None
    target_cpu_pct: float | None = None
    upstream_cpu_pct: float | None = None
    core_busy_pct: dict[int, float] | None = None  # whole-core load, to spot a saturated load-generator core
    peak_rss_mb: float | None = None
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
    ]
    log = log_dir / "upstream.log"
    proc = children.spawn(argv, log=log, cpu=settings.upstream_cpu, env=child_env())
    wait_until_ready(f"http://127.0.0.1:{port}/healthz", proc, log, timeout=30)
    return f"http://127.0.0.1:{port}/v1", proc.pid


def sanity_check(scenario: Scenario, running: Running, timeout_s: float) -> str:
    """One request before any load, so a misconfigured target fails loudly instead of measuring errors."""
    headers = {"Authorization": f"Bearer {running.key}", "Content-Type": "application/json"}
    url = f"{running.base_url}/v1/chat/completions"
    status, resp_headers, body = http_call("POST", url, scenario.body().encode(), headers, timeout=timeout_s)
    if status != 200:
        raise RuntimeError(f"sanity request got HTTP {status}: {body[:300]!r}")
    if not scenario.stream:
        content = json.loads(body)["choices"][0]["message"]["content"]
        return f"chat.completion, {len(content)} chars of content"
    if not resp_headers.get("content-type", "").startswith("text/event-stream"):
        raise RuntimeError(f"stream answered with content-type {resp_headers.get('content-type')!r}")
    events = [line for line in body.decode().split("\n") if line.startswith("data: ")]
    if not events or events[-1].strip() != "data: [DONE]":
        raise RuntimeError(f"stream did not end with 'data: [DONE]': {body[-200:]!r}")
    return f"text/event-stream, {len(events)} data events ending with [DONE]"


def load_spec(scenario: Scenario, running: Running, duration_s: float, timeout_s: float) -> LoadSpec:
    return LoadSpec(
        url=f"{running.base_url}/v1/chat/completions",
        connections=scenario.connections,
        duration_s=duration_s,
        timeout_s=timeout_s,
        body=scenario.body(),
        bearer=running.key,
    )


def measure(scenario: Scenario, target: Target, settings: Settings) -> Measurement:
    """Never raises for a target's failure: it is recorded in `failure` and the run goes on."""
    log_dir = settings.log_dir / f"{scenario.name}-{target.name}"
    try:
        with ExitStack() as stack, Children() as children:  # processes stop before the temp dir goes
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
            upstream_base, upstream_pid = start_upstream(scenario, children, settings, log_dir)
            ctx = StartContext(
                children, upstream_base, settings.target_cpu, workdir, log_dir, settings.python
            )
            running = target.start(ctx)
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

            # the slow scenario needs at least one full upstream round trip to warm up
            warmup = load(max(settings.warmup_s, scenario.upstream_delay_s + 1), "warmup.log")
            cores0, cpu0, up0 = core_times(), cpu_seconds(running.proc.pid), cpu_seconds(upstream_pid)
            t0 = time.monotonic()
            result = load(scenario.duration_s, "load.log")
            t1 = time.monotonic()
            cores1, cpu1, up1 = core_times(), cpu_seconds(running.proc.pid), cpu_seconds(upstream_pid)
            rss = peak_rss_mb(running.proc.pid)
            if running.proc.poll() is not None:
                raise RuntimeError(f"target exited with code {running.proc.returncode} during the load")
    except Exception as exc:  # one failed measurement must not hide the others
        return Measurement(scenario.name, target.name, failure=f"{type(exc).__name__}: {exc}")
    busy = cpu1 - cpu0
    return Measurement(
        scenario=scenario.name,
        target=target.name,
        load=result,
        warmup=warmup,
        cpu_ms_per_req=busy * 1000 / result.requests if result.requests else None,
        target_cpu_pct=100 * busy / (t1 - t0),
        upstream_cpu_pct=100 * (up1 - up0) / (t1 - t0),
        peak_rss_mb=rss,
        core_busy_pct=core_busy_pct(cores0, cores1),
        sanity=sanity,
    )
