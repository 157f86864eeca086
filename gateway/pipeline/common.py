"""Stages every operation shares: pick the group and candidates, admit the caller, keep the record."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.domain import Caller, Operation, UsageRecord
from gateway.errors import GatewayError, InsufficientQuota, ModelNotFound, PermissionDenied
from gateway.runtime import Runtime
from gateway.settings import ChannelSettings


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
    """Quota and rate limits; returns whether a concurrency slot must be released."""
    if caller.quota_micro_usd is not None and caller.used_micro_usd >= caller.quota_micro_usd:
        raise InsufficientQuota("You exceeded your current quota.")
    return await rt.limiter.acquire(caller)


@dataclass
class Ledger:
    """The usage record of one request, from routing to the end of the answer."""

    rt: Runtime
    caller: Caller
    record: UsageRecord
    channels: Sequence[ChannelSettings]
    holds_slot: bool
    started: float = field(default_factory=time.perf_counter)
    closed: bool = False

    def ttfb(self) -> None:
        if self.record.ttfb_ms is None:
            self.record.ttfb_ms = int((time.perf_counter() - self.started) * 1000)

    def close(self, error: BaseException | None = None, http_status: int = 200) -> None:
        if self.closed:
            return
        self.closed = True
        record = self.record
        record.latency_ms = int((time.perf_counter() - self.started) * 1000)
        if error is None:
            record.status, record.http_status = "success", http_status
        elif isinstance(error, GatewayError):
            record.http_status, record.error_code = error.status, error.code
        else:
            record.http_status, record.error_code = 499, "client_closed_request"
        self.rt.usage.submit(record)
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
) -> Ledger:
    group, channels = route(rt, caller, model, group, operation)
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
    return Ledger(rt, caller, record, channels, holds_slot)
