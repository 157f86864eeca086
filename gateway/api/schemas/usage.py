"""Admin usage answers (§6.5, §7), for the OpenAPI document: the records page and the summary.

Documentation only: `gateway/api/admin/usage.py` builds these bodies as plain data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class UsageAttempt(BaseModel):
    """One upstream call of a request, in the order they were made."""

    channel: str
    key_index: int = Field(description="which of the channel's keys (by index, never the key)")
    status: int | str = Field(description="the upstream's HTTP status, or what went wrong (e.g. `timeout`)")
    duration_ms: int


class UsageRecord(BaseModel):
    """One request that reached routing (§6.5); money in micro-USD (1 USD = 1,000,000)."""

    request_id: str
    created_at: str = Field(description="ISO 8601, UTC")
    token_id: str
    group: str
    endpoint: str = Field(description="the path called, e.g. /v1/images/generations")
    model: str = Field(description="the model asked for")
    upstream_model: str | None = Field(description="the model the upstream was asked for")
    channel: str | None = Field(description="the channel that answered, or last tried")
    attempts: list[UsageAttempt]
    status: Literal["success", "failed"]
    http_status: int
    error_code: str | None
    stream: bool
    latency_ms: int
    ttfb_ms: int | None = Field(description="time to the first byte of the answer")
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    text_input_tokens: int
    cached_input_tokens: int
    image_input_tokens: int
    text_output_tokens: int
    image_output_tokens: int
    image_count: int
    image_size: str | None
    image_quality: str | None
    unit_price_micro_usd: int
    cost_micro_usd: int
    usage_estimated: bool = Field(description="true: the upstream gave no usage; the tokens are estimated")
    shortfall_micro_usd: int = Field(description="the part of the cost the quota could not cover")


class UsageRecordList(BaseModel):
    """A page of records, newest first. (`format=csv` answers the same fields as CSV columns, every
    matching record, with no paging.)"""

    object: Literal["list"]
    data: list[UsageRecord]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class UsageTotals(BaseModel):
    requests: int
    errors: int = Field(description="failed requests")
    images: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_micro_usd: int
    shortfall_micro_usd: int


class UsageSummaryRow(UsageTotals):
    key: str | None = Field(
        description="the model, token id, group, channel (null: no channel was reached), UTC day "
        "(YYYY-MM-DD) or UTC hour (YYYY-MM-DDTHH:00:00Z) of this row"
    )


class UsageSummary(BaseModel):
    """Sums per `group_by` key over the matching records, and over them all."""

    object: Literal["usage.summary"]
    group_by: Literal["model", "token", "group", "channel", "day", "hour"]
    data: list[UsageSummaryRow] = Field(description="ordered by key")
    total: UsageTotals
