"""The chat benchmark: the gateway against a bare reference proxy, measured in the same run.

    .venv/bin/python -m bench.chat            # full run, about 3 minutes
    .venv/bin/python -m bench.chat --quick    # smoke run, about 1 minute

Scenarios: small-chat, stream-chat, slow-chat (a part of `python -m bench`, which runs every scenario).
Prints Markdown tables and PASS/FAIL against the targets; writes the same as JSON to bench/results/.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/chat.py`: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.runner import Command, entry  # noqa: E402
from bench.runner import main as run_main  # noqa: E402
from bench.scenarios import CHAT_SCENARIOS  # noqa: E402

CHAT = Command("chat", "Chat benchmark", CHAT_SCENARIOS, "gateway,reference", "reference", __doc__ or "")


def main(argv: list[str] | None = None) -> int:
    return run_main(CHAT, argv)


if __name__ == "__main__":
    entry(CHAT)
