"""Run one load phase with wrk (preferred, when on PATH) or with bench/load.py, and read back one result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.aio import RESULT_PREFIX
from bench.procs import Children, log_tail

BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = BENCH_DIR / "post.lua"
LOAD_SCRIPT = BENCH_DIR / "load.py"


@dataclass(frozen=True)
class LoadSpec:
    url: str
    connections: int
    duration_s: float
    timeout_s: float
    body: str
    bearer: str


@dataclass(frozen=True)
class LoadResult:
    driver: str
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    error_detail: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class DriverError(RuntimeError):
    """The load generator failed or printed no result."""


def choose_driver(requested: str) -> str:
    if requested == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if requested == "wrk" and not shutil.which("wrk"):
        raise DriverError("wrk is not on PATH (apt-get install -y wrk), or use --driver python")
    return requested


def driver_version(driver: str) -> str:
    if driver != "wrk":
        return f"bench/load.py on Python {sys.version.split()[0]}"
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10, check=False)
    first_line = (out.stdout or out.stderr or "wrk").splitlines()[0]
    return first_line.split(" [", 1)[0]  # "wrk 4.2.0 [epoll] Copyright ..." -> "wrk 4.2.0"


def _command(spec: LoadSpec, driver: str, python: str) -> list[str]:
    if driver == "wrk":
        seconds = max(1, round(spec.duration_s))
        timeout = max(1, round(spec.timeout_s))
        conns = str(spec.connections)
        return [
            "wrk",
            "-t1",
            "-c",
            conns,
            "-d",
            f"{seconds}s",
            "--timeout",
            f"{timeout}s",
            "-s",
            str(WRK_SCRIPT),
            spec.url,
        ]
    return [
        python,
        str(LOAD_SCRIPT),
        "--url",
        spec.url,
        "--connections",
        str(spec.connections),
        "--duration",
        str(spec.duration_s),
        "--timeout",
        str(spec.timeout_s),
        "--body",
        spec.body,
        "--header",
        f"Authorization: Bearer {spec.bearer}",
    ]


def _parse(line: str, driver: str) -> LoadResult:
    data = json.loads(line[len(RESULT_PREFIX) :])
    if driver != "wrk":
        return LoadResult(**data)
    detail = {k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout") if data[k]}
    duration_s = data["duration_us"] / 1e6
    return LoadResult(
        driver="wrk",
        requests=int(data["requests"]),
        duration_s=round(duration_s, 3),
        rps=data["requests"] / duration_s if duration_s > 0 else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=sum(detail.values()),
        error_detail=detail,
    )


def run_load(
    spec: LoadSpec, *, driver: str, children: Children, cpu: int | None, log: Path, python: str
) -> LoadResult:
    """Run the load generator to completion (bounded by duration + timeout + slack) and parse its result."""
    env = {**os.environ, "BENCH_BODY": spec.body, "BENCH_AUTH": f"Bearer {spec.bearer}"}
    proc = children.spawn(_command(spec, driver, python), log=log, cpu=cpu, capture_stdout=True, env=env)
    try:
        stdout, _ = proc.communicate(timeout=spec.duration_s + spec.timeout_s + 30)
    except subprocess.TimeoutExpired as exc:
        raise DriverError(f"{driver} did not finish in time") from exc
    finally:
        children.stop(proc)
    text = stdout.decode(errors="replace")
    with log.open("a") as log_file:
        log_file.write(text)
    for line in text.splitlines():
        if line.startswith(RESULT_PREFIX):
            return _parse(line, driver)
    raise DriverError(f"{driver} exited with {proc.returncode} and no result:\n{log_tail(log)}")
