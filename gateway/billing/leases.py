"""Blocks of quota a process holds for its busy tokens, so that most reservations need no statement.

A reservation that its token's block covers is taken from memory. One that the block does not cover goes
to the database and asks for its own amount plus a new block (`pricing.quota_block_requests` reservations
of its size), in the usual conditional statement. When the quota left does not cover that, the process
gives back what it still held, and for `EXACT_SECONDS` the token's reservations are statements of their
own again: the last requests of a quota are decided exactly, as without blocks, except for what other
processes still hold, at most one block each (given back as they are refused a block in turn, or after
`IDLE_SECONDS` unused).

A held block is already counted in the token's `used` (so the quota never goes below zero, whatever the
processes do):
- a settlement's refund goes back into the block, and its extra charge is taken from it when it covers it;
- a block unused for `IDLE_SECONDS` goes back to the database, and so does every block when the process
  stops and a token's block when an admin changes the token;
- `/v1/me`, the dashboard endpoints and the admin API subtract this process's block (`held`).
What it costs: a process killed without its shutdown (SIGKILL, power loss) leaves its blocks counted as
used, at most one block per token; every usage record still holds its request's real cost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

EXACT_SECONDS = 5.0  # after a block was refused, the token's reservations are statements this long
IDLE_SECONDS = 2.0  # a block unused this long goes back to the database

GiveBack = Callable[[str, int], None]


@dataclass(slots=True)
class Lease:
    held: int = 0  # micro-USD counted in `used`, not yet spent
    used_at: float = 0.0
    exact_until: float = 0.0


class Leases:
    def __init__(self, block_requests: int, give_back: GiveBack, clock: Callable[[], float] = time.monotonic):
        self.block_requests = block_requests  # 0: no blocks, every reservation is a statement
        self._give_back = give_back  # returns micro-USD to the token's `used`, in a statement
        self._clock = clock
        self._leases: dict[str, Lease] = {}
        self._timer: asyncio.TimerHandle | None = None

    def held(self, token_id: str) -> int:
        lease = self._leases.get(token_id)
        return 0 if lease is None else lease.held

    def take(self, token_id: str, micro_usd: int) -> bool:
        """Spend from the token's block, if it covers `micro_usd`."""
        lease = self._leases.get(token_id)
        if lease is None or lease.held < micro_usd:
            return False
        lease.held -= micro_usd
        lease.used_at = self._clock()
        return True

    def put_back(self, token_id: str, micro_usd: int) -> bool:
        """A refund into the token's block; False when it has none (the refund is a statement)."""
        lease = self._leases.get(token_id)
        if lease is None or self._clock() < lease.exact_until:
            return False
        lease.held += micro_usd
        lease.used_at = self._clock()
        return True

    def ask(self, amounts: list[int], token_id: str) -> int | None:
        """For reservations the block does not cover: what to take with them (their sum and a block), or
        None when the token's reservations are statements of their own for now."""
        if not self.block_requests:
            return None
        lease = self._leases.get(token_id)
        if lease is not None and self._clock() < lease.exact_until:
            return None
        return sum(amounts) + max(amounts) * self.block_requests

    def granted(self, token_id: str, block: int) -> None:
        lease = self._leases.setdefault(token_id, Lease())
        lease.held += block
        lease.used_at = self._clock()
        self._arm()

    def refused(self, token_id: str) -> None:
        """The quota left is too small for a block: statements of their own for a while, and what this
        process held goes back now, so that the last of the quota can be spent anywhere."""
        lease = self._leases.setdefault(token_id, Lease())
        held, lease.held = lease.held, 0
        lease.exact_until = lease.used_at = (
            self._clock() + EXACT_SECONDS
        )  # kept until then: sweep reads used_at
        self._arm()
        if held:
            self._give_back(token_id, held)

    def release(self, token_id: str) -> None:
        """Give the token's block back now (an admin changed the token)."""
        lease = self._leases.pop(token_id, None)
        if lease is not None and lease.held:
            self._give_back(token_id, lease.held)

    def release_all(self) -> None:
        """Give every block back (the process stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for token_id in list(self._leases):
            self.release(token_id)

    def sweep(self) -> None:
        """Give back the blocks unused for `IDLE_SECONDS` (runs from a timer while any block is held)."""
        self._timer = None
        now = self._clock()
        for token_id, lease in list(self._leases.items()):
            if now - lease.used_at >= IDLE_SECONDS:
                self.release(token_id)
        if self._leases:
            self._arm()

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(IDLE_SECONDS, self.sweep)
