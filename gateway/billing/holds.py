"""Where a request's quota reservation is reported, for work that must be able to refund it later.

An async image job (§4.6) runs the normal pipeline call, which reserves quota before the upstream call
and settles it after. If the process dies in between, nobody settles: the job row must say how much is
held so that another node can refund it. The reserving code calls `report_reserved(amount)` after the
reservation and `report_reserved(0)` once it has settled or refunded; a job runner listens with
`reporting_to(sink)` around the call. Outside a job nothing listens and a report costs one lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

ReservationSink = Callable[[int], None]

_sink: ContextVar[ReservationSink | None] = ContextVar("reservation_sink", default=None)


def report_reserved(micro_usd: int) -> None:
    """The quota the current request holds right now (0 once settled or refunded)."""
    sink = _sink.get()
    if sink is not None:
        sink(micro_usd)


@contextmanager
def reporting_to(sink: ReservationSink) -> Iterator[None]:
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)
