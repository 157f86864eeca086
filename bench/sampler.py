"""What the soak run samples of the gateway, from /proc alone: resident memory, open file descriptors, and
established TCP connections from its processes to a given port (the fake upstream's, the fake S3's).

A connection belongs to a process when one of its fds is the socket (`/proc/<pid>/fd/N -> socket:[inode]`)
whose inode `/proc/<pid>/net/tcp` (and tcp6) lists as ESTABLISHED with that remote port.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.procs import process_tree, rss_mb

TCP_ESTABLISHED = "01"


@dataclass(frozen=True)
class Sample:
    t_s: float  # seconds since the soak started
    rss_mb: float
    fds: int
    conns: dict[str, int]  # name (e.g. "upstream") -> established connections to its port


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets among the fds of `pid` (fds that close meanwhile are skipped)."""
    inodes: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    return inodes


def fd_count(root: int) -> int:
    """Open fds of `root` and its descendants."""
    total = 0
    for pid in process_tree(root):
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
    return total


def established_to(table: str, remote_port: int) -> set[int]:
    """Inodes of the ESTABLISHED sockets to `remote_port` in the text of a /proc/net/tcp(6) table."""
    inodes: set[int] = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != TCP_ESTABLISHED:
            continue
        if int(fields[2].rsplit(":", 1)[1], 16) == remote_port:
            inodes.add(int(fields[9]))
    return inodes


def connections_to(root: int, remote_port: int) -> int:
    """ESTABLISHED TCP connections from `root` and its descendants to `remote_port`."""
    count = 0
    for pid in process_tree(root):
        mine = socket_inodes(pid)
        if not mine:
            continue
        established: set[int] = set()
        for name in ("tcp", "tcp6"):
            try:
                established |= established_to(Path(f"/proc/{pid}/net/{name}").read_text(), remote_port)
            except OSError:
                continue
        count += len(mine & established)
    return count


def sample(root: int, t_s: float, ports: dict[str, int]) -> Sample:
    conns = {name: connections_to(root, port) for name, port in ports.items()}
    return Sample(t_s=t_s, rss_mb=rss_mb(root), fds=fd_count(root), conns=conns)
