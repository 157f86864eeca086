"""`gateway serve --workers N`: N worker processes, each listening on a socket of its own (SO_REUSEPORT), so
that the kernel spreads new connections across them.

uvicorn's own `--workers` shares one listening socket: a client or proxy that opens its keep-alive
connections in one burst has them all accepted by whichever worker wakes first, which then serves them all
while the others idle (measured: `bench/README.md`). Here the parent binds nothing; each worker binds the
address with SO_REUSEPORT and serves it through uvicorn. The parent forwards SIGTERM and SIGINT to the
workers (each drains, see api/drain.py), waits for them, and starts a new worker in place of one that died;
a worker that cannot start (the address is taken) stops the whole server.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn

log = logging.getLogger("gateway.workers")

STARTUP_FAILURE = 3  # uvicorn's exit code when a server cannot start
CHECK_SECONDS = 0.5


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def run(app: str, workers: int, options: dict[str, Any]) -> None:
    """Serve `app` (an import string of an app factory) in `workers` processes until SIGTERM or SIGINT."""
    context = multiprocessing.get_context("spawn")
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    processes = [_start(context, app, options) for _ in range(workers)]
    try:
        while not stopping:
            time.sleep(CHECK_SECONDS)
            for i, process in enumerate(processes):
                if process.is_alive() or stopping:
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("a worker could not start (exit code %s): stopping", process.exitcode)
                    stopping.append(signal.SIGTERM)
                    break
                log.error("worker %s exited with code %s: starting another", process.pid, process.exitcode)
                processes[i] = _start(context, app, options)
    finally:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if any(p.exitcode == STARTUP_FAILURE for p in processes):
        raise SystemExit(STARTUP_FAILURE)


def _start(context: Any, app: str, options: dict[str, Any]) -> BaseProcess:
    process: BaseProcess = context.Process(target=_serve, args=(app, options), daemon=False)
    process.start()
    return process


def _serve(app: str, options: dict[str, Any]) -> None:
    """A worker: its own socket on the shared address, then uvicorn on it."""
    host, port = options["host"], options["port"]
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", host, port, exc)
        raise SystemExit(STARTUP_FAILURE) from None
    server = uvicorn.Server(uvicorn.Config(app, factory=True, **options))
    server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)
