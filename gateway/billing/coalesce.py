"""Quota changes of one token, decided together: one statement for many requests.

Every priced request of a token with a quota reserves before its upstream call, and the statement costs
more CPU than the rest of a small request (about 0.65 ms through SQLAlchemy and aiosqlite). Requests of
the same token are therefore queued under it and decided in batches (group commit):

- the first request of an empty queue starts the token's worker; the worker runs from the next turn of
  the event loop, so every request queued in this turn joins its first batch;
- requests that arrive while the worker's statement runs wait for it and form the next batch;
- the worker hands each batch to `decide`, which resolves every request's future (one transaction for
  the whole batch); an error it raises fails every request of the batch still unresolved.

A request waits at most for the statement in flight plus its own batch's. A queue is gone as soon as
its worker has nothing left, so an idle token costs nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

R = TypeVar("R")


@dataclass(slots=True)
class Pending(Generic[R]):
    """One request in a batch: its amount (micro-USD) and the future its caller awaits."""

    amount: int
    future: asyncio.Future[R]

    def resolve(self, result: R) -> None:
        if not self.future.done():  # its caller may have given up (a settlement cancelled at shutdown)
            self.future.set_result(result)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


Decide = Callable[[str, list[Pending[R]]], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]


class Coalescer(Generic[R]):
    def __init__(self, decide: Decide[R], spawn: Spawn) -> None:
        self._decide = decide
        self._spawn = spawn  # the ledger's, so that its drain waits for the workers too
        self._queues: dict[str, list[Pending[R]]] = {}

    def busy(self, token_id: str) -> bool:
        """Whether the token has a statement running or requests queued."""
        return token_id in self._queues

    def submit(self, token_id: str, amount: int) -> asyncio.Future[R]:
        """Queue a request; its future resolves once the batch it joins is decided."""
        pending = Pending(amount, asyncio.get_running_loop().create_future())
        queue = self._queues.get(token_id)
        if queue is None:
            queue = self._queues[token_id] = [pending]
            worker = self._spawn(self._work(token_id))
            worker.add_done_callback(lambda _: self._abandon(token_id, queue))
        else:
            queue.append(pending)
        return pending.future

    async def _work(self, token_id: str) -> None:
        queue = self._queues[token_id]
        try:
            while queue:
                batch = queue.copy()
                queue.clear()  # who arrives while this batch's statement runs joins the next one
                try:
                    await self._decide(token_id, batch)
                except asyncio.CancelledError:
                    for pending in (*batch, *queue):
                        pending.future.cancel()
                    raise
                except Exception as exc:  # noqa: BLE001 - every waiter gets the error; the worker goes on
                    for pending in batch:
                        pending.fail(exc)
        finally:
            del self._queues[token_id]

    def _abandon(self, token_id: str, queue: list[Pending[R]]) -> None:
        """A worker cancelled before it ever ran (at shutdown) leaves its queue: cancel what waits in it."""
        if self._queues.get(token_id) is queue:
            del self._queues[token_id]
            for pending in queue:
                pending.future.cancel()
