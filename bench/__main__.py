"""The whole benchmark in one command: every scenario of the performance table, one combined report.

    .venv/bin/python -m bench                 # full run, about 8 minutes
    .venv/bin/python -m bench --quick         # smoke run, 3-4 s per measurement, about 4 minutes
    .venv/bin/python -m bench --profile small-chat,rehost-16mb   # and flame graphs in bench/profiles/

Chat (small, streamed, 2 s upstream with 512 connections) against the bare reference proxy; images passed
through (1 MiB, 16 MiB, Gemini 4K) against the same proxy passing the upstream's base64 through; images
re-hosted to S3 against that pass-through (and, for information, the bare re-hosting baseline); and
`gateway serve --workers 2` against one worker. One table with each row's target and PASS/FAIL; the JSON
goes to bench/results/all-<UTC time>.json. Exit code 1 if a target of the table is missed.
"""

from __future__ import annotations

from bench.runner import Command, entry
from bench.scenarios import ALL

BENCH = Command("all", "Gateway benchmark", ALL, "gateway,reference,baseline", "reference", __doc__ or "")

if __name__ == "__main__":
    entry(BENCH)
