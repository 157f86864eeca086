"""The soak run's parts: the /proc sampler counts the fds and connections of a known process, the driver
tells a good answer from a bad one, and the verdict reads the samples as the README says."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from bench.sampler import Sample, connections_to, established_to, fd_count, sample, socket_inodes
from bench.soak import judge
from bench.soak_driver import MIX, body_problem


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server
    server.close()


def test_connections_to_a_port_are_counted_for_this_process(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    pid = os.getpid()
    before_fds = fd_count(pid)
    assert connections_to(pid, port) == 0
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    accepted = [listener.accept()[0] for _ in clients]  # their remote port is the client's, not `port`
    try:
        assert connections_to(pid, port) == 3
        assert fd_count(pid) == before_fds + 6
        assert {c.fileno() for c in clients} and len(socket_inodes(pid)) >= 7  # + the listener
        got = sample(pid, 1.5, {"up": port})
        assert got.conns == {"up": 3} and got.fds == before_fds + 6 and got.rss_mb > 0
        clients.pop().close()
        assert connections_to(pid, port) == 2
    finally:
        for s in clients + accepted:
            s.close()


TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0
   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0
   2: 0100007F:9C41 0100007F:1F90 06 00000000:00000000 00:00000000 00000000     0        0 333 1 0
   3: 0100007F:9C42 0100007F:1F91 01 00000000:00000000 00:00000000 00000000     0        0 444 1 0
"""


def test_only_established_sockets_to_the_port_count() -> None:
    assert established_to(TABLE, 0x1F90) == {222}  # 111 listens, 333 is in TIME_WAIT, 444 elsewhere


def samples(rss: list[float], fds: list[int], conns: list[int]) -> list[Sample]:
    return [
        Sample(float(i * 5), r, f, {"upstream": c})
        for i, (r, f, c) in enumerate(zip(rss, fds, conns, strict=True))
    ]


DRIVER = {"ok": 1000, "errors": 0, "late": 0}


def verdicts(
    rss: list[float], fds: list[int], conns: list[int], driver: dict[str, object] = DRIVER
) -> dict[str, bool]:
    return {c.name: c.passed for c in judge(samples(rss, fds, conns), 10.0, driver, 1000)}


def test_a_steady_gateway_passes() -> None:
    got = verdicts(
        [200, 100, 101, 102, 101, 103, 104, 104], [99, 50, 52, 51, 50, 52, 51, 52], [9, 30] + [31] * 6
    )
    assert all(got.values()), got  # the first two samples are the warm-up


def test_leaks_and_errors_fail() -> None:
    steady = [100.0] * 8
    got = verdicts([100, 100, 100, 100, 102, 110, 115, 120], [50] * 8, [30] * 8)
    assert not got["RSS"] and got["open fds"]  # +15%
    got = verdicts(steady, [50, 50, 55, 60, 65, 70, 75, 80], [30] * 8)
    assert not got["open fds"] and got["upstream connections"]
    got = verdicts(steady, [50] * 8, [30, 30, 64, 64, 64, 64, 64, 64])  # a stall: pools grew once
    assert got["upstream connections"]
    got = verdicts(steady, [50] * 8, [30] * 8, {"ok": 900, "errors": 2, "late": 7})
    assert not got["errors"] and not got["rate kept"]
    assert judge(samples(steady[:4], [50] * 4, [30] * 4), 10.0, DRIVER, 1000)[0].name == "samples"


def test_the_mix_and_what_counts_as_a_good_answer() -> None:
    assert len(MIX) == 20 and MIX.count("chat") == 9 and MIX.count("stream") == 9
    assert MIX.count("image-b64") == MIX.count("image-url") == 1
    assert body_problem("stream", b"data: {}\n\ndata: [DONE]\n\n") is None
    assert body_problem("stream", b"data: {}\n\n") == "stream_without_done"
    assert body_problem("image-url", b'{"data": [{"url": "http://x"}]}') is None
    assert body_problem("image-b64", b'{"data": [{"b64_json": "iVBO"}]}') == "image_not_inline"
    assert body_problem("chat", b'{"object": "chat.completion"}') is None
