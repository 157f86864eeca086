"""Stages every operation shares: pick the group and candidates, admit the caller, reserve the estimated
cost, and keep the record, settled to the real cost when the answer is done.

The order, for every operation: route → price (503 `model_price_not_set` under `pricing.unpriced:
reject`) → rate limits → `Ledger.reserve` (429 `insufficient_quota`) → the upstream call → `Ledger.done`
(settle, then the usage record) or `Ledger.close(error)` (refund, then the record). A free model costs no
database round trip; a token without a quota reserves nothing and is charged at settlement only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.billing import holds
from gateway.billing.pricing import FREE, Charge, RequestFacts, request_facts
from gateway.domain import Caller, JSONObject, Operation, UsageRecord
from gateway.errors import GatewayError, InsufficientQuota, ModelNotFound, PermissionDenied
from gateway.pricing_settings import ModelPrice
from gateway.runtime import Runtime
from gateway.settings import ChannelSettings

log = logging.getLogger("gateway.billing")

# How long a finished answer waits for its settlement before it is sent anyway (the settlement goes on
# in the background: a database outage must not hold answers back).
SETTLE_WAIT_SECONDS = 2.0


def route(
    rt: Runtime, caller: Caller, model: str, group: str | None, operation: Operation
) -> tuple[str, list[ChannelSettings]]:
    """The group to route in and the candidate channels, or the §2 error that says why not."""
    group = group or caller.group
    if not caller.may_use_group(group):
        raise PermissionDenied(
            f"This API key may not use group '{group}'.", code="group_not_allowed", param="group"
        )
    if not caller.may_use_model(model) or not rt.catalog.serves(group, model):
        raise ModelNotFound(
            f"The model '{model}' does not exist or you do not have access to it.", param="model"
        )
    channels = rt.catalog.candidates(group, model, operation)
    if not channels:
        raise ModelNotFound(f"The model '{model}' is not available for this endpoint.", param="model")
    return group, channels


async def admit(rt: Runtime, caller: Caller) -> bool:
    """Rate limits; returns whether a concurrency slot must be released.

    The quota is not checked here: the cached caller's counters may be stale (another node, an admin
    top-up), so the reservation's statement on the token's row is the only quota check."""
    return await rt.limiter.acquire(caller)


@dataclass(slots=True)
class Bill:
    """What a priced request is charged: its price, the facts of its request, what it reserved."""

    price: ModelPrice
    facts: RequestFacts
    limited: bool  # the token has a quota: reserve before the call
    reserved: int = 0


@dataclass
class Ledger:
    """The usage record of one request, from routing to the end of the answer, and its quota."""

    rt: Runtime
    caller: Caller
    record: UsageRecord
    channels: Sequence[ChannelSettings]
    holds_slot: bool
    bill: Bill | None = None  # None: nothing to charge
    started: float = field(default_factory=time.perf_counter)
    closed: bool = False
    # The upstream refused the content (a chat answer ending in content_filter, no image): the answer
    # is delivered, nothing is charged.
    refused: bool = False

    def ttfb(self) -> None:
        if self.record.ttfb_ms is None:
            self.record.ttfb_ms = int((time.perf_counter() - self.started) * 1000)

    async def reserve(self) -> None:
        """Reserve the estimated cost before the upstream call; 429 `insufficient_quota` if it doesn't fit.

        A refused request writes no usage record (§6.5: refused before routing counts in metrics only)."""
        bill = self.bill
        if bill is None or not bill.limited or self.closed or bill.reserved:
            return
        estimate = self.rt.prices.estimate(bill.price, self.record.group, bill.facts)
        if estimate <= 0:
            return
        try:
            reserved = await self.rt.quota.reserve(self.caller.token_id, estimate)
        except BaseException:
            self._drop()
            raise
        if not reserved:
            self._drop()
            raise InsufficientQuota(
                "You exceeded your current quota: the estimated cost of this request is more than is left."
            )
        bill.reserved = estimate
        holds.report_reserved(estimate)  # an async job keeps it on its row, for a refund if the node dies

    async def done(self, http_status: int = 200) -> None:
        """The answer succeeded: settle to its real cost (waiting briefly for it), then keep the record."""
        settling = self.close(None, http_status)
        if settling is not None:
            await asyncio.wait({settling}, timeout=SETTLE_WAIT_SECONDS)

    def close(self, error: BaseException | None = None, http_status: int = 200) -> asyncio.Task[int] | None:
        """Finish the record; settle (success) or refund everything (error). Returns the settlement's
        task when one runs: the record is submitted when it ends, with its shortfall."""
        if self.closed:
            return None
        self.closed = True
        record = self.record
        record.latency_ms = int((time.perf_counter() - self.started) * 1000)
        if error is None:
            record.status, record.http_status = "success", http_status
        elif isinstance(error, GatewayError):
            record.http_status, record.error_code = error.status, error.code
        else:
            record.http_status, record.error_code = 499, "client_closed_request"
        if self.holds_slot:
            self.rt.limiter.release(self.caller)
        settling = self._settle(self._charge() if error is None and not self.refused else FREE)
        if settling is None:
            holds.report_reserved(0)
            self.rt.usage.submit(record)
        else:
            settling.add_done_callback(self._submit_settled)
        return settling

    def _charge(self) -> Charge:
        bill, record = self.bill, self.record
        if bill is None:
            return FREE
        try:
            charge = self.rt.prices.cost(
                bill.price,
                record.group,
                bill.facts,
                usage=record.usage,
                images=record.image_count,
                size=record.image_size,
                quality=record.image_quality,
            )
        except Exception:  # a pricing bug must not lose the record: charge the reservation
            log.exception("pricing request %s failed; charging its reservation", record.request_id)
            charge = Charge(bill.reserved, 0, True)
        record.unit_price_micro_usd = charge.unit_price_micro_usd
        record.cost_micro_usd = charge.cost_micro_usd
        record.usage_estimated = charge.usage_estimated
        return charge

    def _settle(self, charge: Charge) -> asyncio.Task[int] | None:
        reserved = self.bill.reserved if self.bill is not None else 0
        if reserved == charge.cost_micro_usd:
            return None
        return self.rt.quota.settle(self.caller.token_id, reserved, charge.cost_micro_usd)

    def _submit_settled(self, task: asyncio.Task[int]) -> None:
        if not task.cancelled() and task.exception() is None:
            self.record.shortfall_micro_usd = task.result()
            holds.report_reserved(0)
        self.rt.usage.submit(self.record)

    def _drop(self) -> None:
        """Refused before the upstream call: release the slot and write no record."""
        self.closed = True
        if self.holds_slot:
            self.rt.limiter.release(self.caller)


async def open_ledger(
    rt: Runtime,
    caller: Caller,
    *,
    request_id: str,
    endpoint: str,
    model: str,
    group: str | None,
    operation: Operation,
    stream: bool,
    body: JSONObject | None = None,
) -> Ledger:
    """Route, price and admit a request; `body` (the client's fields) feeds the cost estimate."""
    group, channels = route(rt, caller, model, group, operation)
    price = rt.prices.price_for(model)  # billing uses the model name the client asked for
    bill = None
    if price is not None:
        facts = request_facts(operation, body or {}, prompt=price.per_million_tokens is not None)
        bill = Bill(price, facts, limited=caller.quota_micro_usd is not None)
    holds_slot = await admit(rt, caller)
    record = UsageRecord(
        request_id=request_id,
        created_at=datetime.now(UTC),
        token_id=caller.token_id,
        group=group,
        endpoint=endpoint,
        model=model,
        stream=stream,
    )
    return Ledger(rt, caller, record, channels, holds_slot, bill)
