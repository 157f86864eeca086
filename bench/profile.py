"""Flame graphs of the gateway while it is measured: `py-spy record` on the target's process (and its
workers) for the measured window, written as SVG to bench/profiles/<scenario>.svg.

py-spy reads the target's memory with ptrace: it needs root or CAP_SYS_PTRACE (or
`kernel.yama.ptrace_scope=0`). It runs on the load core, so it does not take the target's core; each
sample still stops the target for a moment, so the req/s of a profiled measurement is a little lower.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bench.procs import Children, log_tail

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
SAMPLE_RATE_HZ = 200


def py_spy() -> str:
    """py-spy beside the running interpreter (the project's virtualenv), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError(
            "py-spy is not installed: .venv/bin/pip install -e '.[dev]' (or pip install py-spy)"
        )
    return found


def start(
    children: Children, pid: int, out: Path, duration_s: float, cpu: int | None, log: Path
) -> subprocess.Popen[bytes]:
    """Sample `pid` and its subprocesses for `duration_s` seconds into the SVG `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [py_spy(), "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--output", str(out)]
    argv += [
        "--format",
        "flamegraph",
        "--rate",
        str(SAMPLE_RATE_HZ),
        "--duration",
        str(max(1, round(duration_s))),
    ]
    return children.spawn(argv, log=log, cpu=cpu)


def finish(children: Children, proc: subprocess.Popen[bytes], out: Path, log: Path) -> Path:
    """Wait for py-spy to write its SVG; raise with its log if it did not."""
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    children.stop(proc)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy exited with {proc.returncode}, no {out.name}:\n{log_tail(log)}")
    return out
