"""Child processes of the benchmark and what /proc says about them.

Every child runs in its own process group, optionally pinned to one core with `taskset`, asks the kernel to
kill it if the harness dies (PR_SET_PDEATHSIG), and is stopped by `Children.stop_all()` on any exit path.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from urllib.parse import urlsplit

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


class StartError(RuntimeError):
    """A child did not come up (exited early or never answered)."""


def _pdeathsig_setter() -> Callable[[], None] | None:
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_pdeathsig() -> None:  # runs in the child between fork and exec
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    return set_pdeathsig


_SET_PDEATHSIG = _pdeathsig_setter()


class Children:
    """Owns the benchmark's child processes; a context manager that stops them all on exit."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        self,
        argv: Sequence[str],
        *,
        log: Path,
        cpu: int | None = None,
        capture_stdout: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        cmd = ["taskset", "-c", str(cpu), *argv] if cpu is not None else list(argv)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as log_file:
            log_file.write(("$ " + " ".join(cmd) + "\n").encode())
            log_file.flush()
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture_stdout else log_file,
                stderr=log_file,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,  # its own process group, out of reach of the terminal's Ctrl-C
                preexec_fn=_SET_PDEATHSIG,
            )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        try:  # the group may outlive its leader (a server's worker processes)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc.stdout is not None:
            proc.stdout.close()
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc, grace=3.0)

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_call(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, str], bytes]:
    """One loopback HTTP request with the standard library (no proxies from the environment)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        conn.request(method, parts.path or "/", body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def log_tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_until_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    """Poll `url` until it answers 200; fail fast if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"exited with code {proc.returncode}:\n{log_tail(log)}")
        try:
            status, _, _ = http_call("GET", url, timeout=2)
            if status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    raise StartError(f"{url} did not answer 200 within {timeout:.0f} s:\n{log_tail(log)}")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from 3 (state) on; comm may hold spaces


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree: list[int] = []
    todo = [root]
    while todo and len(tree) < 10_000:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(root: int) -> float:
    """utime + stime of `root` and its descendants (all threads included)."""
    ticks = 0
    for pid in process_tree(root):
        if (fields := _stat_fields(pid)) is not None:
            ticks += int(fields[11]) + int(fields[12])  # stat fields 14 and 15
    return ticks / CLOCK_TICKS


def _status_mb(root: int, field: str) -> float:
    """Sum of one `/proc/<pid>/status` memory field (in kB there) over `root` and its descendants, in MB."""
    total_kb = 0
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith(field):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def peak_rss_mb(root: int) -> float:
    """VmHWM (peak resident set over the process life) of `root`, plus its descendants'."""
    return _status_mb(root, "VmHWM:")


def rss_mb(root: int) -> float:
    """VmRSS (resident set now) of `root`, plus its descendants'."""
    return _status_mb(root, "VmRSS:")


def usable_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def placement(no_pin: bool) -> tuple[int | None, int | None]:
    """(core for the helpers + load generator, core for the target), or no pinning at all."""
    cores = usable_cores()
    if no_pin or len(cores) < 2 or shutil.which("taskset") is None:
        if not no_pin:
            print("warning: fewer than 2 cores or no taskset; running unpinned", file=sys.stderr)
        return None, None
    return cores[0], cores[1]


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`, which stops the children


def install_signal_handlers() -> None:
    """Ctrl-C, SIGTERM and SIGHUP unwind the harness, so `Children` stop every child on the way out."""
    # SIGINT must unwind even when started in the background (where it is inherited as ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # respect nohup
            signal.signal(sig, _raise_exit)


def core_times() -> dict[int, tuple[int, int]]:
    """Per core: (busy ticks, total ticks) since boot, from /proc/stat."""
    out: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            ticks = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
            out[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    return out


def core_busy_pct(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> dict[int, float]:
    busy: dict[int, float] = {}
    for core, (b1, t1) in after.items():
        b0, t0 = before.get(core, (b1, t1))
        busy[core] = round(100 * (b1 - b0) / (t1 - t0), 1) if t1 > t0 else 0.0
    return busy
