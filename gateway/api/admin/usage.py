"""Admin usage endpoints (§7): the records (filters, cursor paging, CSV) and the summary.

Records come newest first, keyset-paged on their id: `next_cursor` is opaque to clients. `format=csv`
streams every matching record in batches of `CSV_BATCH`, each fetched in its own short session, so an
export of millions of rows holds one batch in memory and no database session between batches.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query
from sqlalchemy import RowMapping
from starlette.responses import Response, StreamingResponse

from gateway.api.admin.deps import AdminDep, FilterText
from gateway.api.deps import RuntimeDep
from gateway.db import repositories as repo
from gateway.errors import InvalidRequest
from gateway.runtime import Runtime

router = APIRouter(prefix="/admin/usage")

CSV_BATCH = 500
MAX_PAGE = 1000
MAX_ID = 2**63 - 1  # the largest BIGINT: a larger cursor is no id, and no database takes it
FIELDS = (
    "request_id", "created_at", "token_id", "group", "endpoint", "model", "upstream_model", "channel",
    "attempts", "status", "http_status", "error_code", "stream", "latency_ms", "ttfb_ms", "prompt_tokens",
    "completion_tokens", "total_tokens", "text_input_tokens", "cached_input_tokens", "image_input_tokens",
    "text_output_tokens", "image_output_tokens", "image_count", "image_size", "image_quality",
    "unit_price_micro_usd", "cost_micro_usd", "usage_estimated", "shortfall_micro_usd",
)  # fmt: skip
SUMMED = ("image_count", "prompt_tokens", "completion_tokens", "total_tokens", "cost_micro_usd",
          "shortfall_micro_usd")  # fmt: skip


def _json(data: object) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def parse_time(value: str | None, param: str) -> datetime | None:
    """ISO 8601 (a date, or a time; without a zone it is UTC) or Unix seconds, as an aware UTC time."""
    if value is None or value == "":
        return None
    try:
        return _as_utc(value)
    except (ValueError, OverflowError, OSError):  # not a time, or one outside the years 1-9999 in UTC
        raise InvalidRequest(
            f"'{param}' must be an ISO 8601 date or time, or Unix seconds.",
            code="invalid_value",
            param=param,
        ) from None


def _as_utc(value: str) -> datetime:
    if value.isascii() and value.replace(".", "", 1).isdigit():
        return datetime.fromtimestamp(float(value), UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _filter(
    token: str | None,
    model: str | None,
    group: str | None,
    channel: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
) -> repo.UsageFilter:
    return repo.UsageFilter(
        token_id=token,
        model=model,
        group=group,
        channel=channel,
        status=status,
        since=parse_time(since, "from"),
        until=parse_time(until, "to"),
    )


def _cursor(value: str | None) -> int | None:
    """A record id: ASCII digits (str.isdigit also takes '²', which int() refuses), within BIGINT."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit() and int(value) <= MAX_ID):
        raise InvalidRequest("Invalid 'cursor': use the next_cursor of the previous page.", param="cursor")
    return int(value)


def record_view(row: RowMapping) -> dict[str, Any]:
    view = {name: row[name] for name in FIELDS}
    created = row["created_at"]
    view["created_at"] = (created if created.tzinfo else created.replace(tzinfo=UTC)).isoformat()
    return view


@router.get("/records")
async def records(
    rt: RuntimeDep,
    _: AdminDep,
    token: FilterText = None,
    model: FilterText = None,
    group: FilterText = None,
    channel: FilterText = None,
    status: Literal["success", "failed"] | None = None,
    since: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    until: Annotated[str | None, Query(alias="to", max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    format: Literal["json", "csv"] = "json",
) -> Response:
    f = _filter(token, model, group, channel, status, since, until)
    before = _cursor(cursor)
    if format == "csv":
        headers = {"content-disposition": 'attachment; filename="usage.csv"'}
        return StreamingResponse(_csv(rt, f, before), media_type="text/csv; charset=utf-8", headers=headers)
    async with rt.sessionmaker() as session:
        rows = await repo.usage_records_page(session, f, before_id=before, limit=limit + 1)
    page = rows[:limit]
    next_cursor = str(page[-1]["id"]) if len(rows) > limit else None
    return _json({"object": "list", "data": [record_view(r) for r in page], "next_cursor": next_cursor})


async def _csv(rt: Runtime, f: repo.UsageFilter, before: int | None) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELDS)
    while True:
        async with rt.sessionmaker() as session:
            rows = await repo.usage_records_page(session, f, before_id=before, limit=CSV_BATCH)
        for row in rows:
            writer.writerow([_cell(name, row) for name in FIELDS])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < CSV_BATCH:
            return
        before = rows[-1]["id"]


def _cell(name: str, row: RowMapping) -> Any:
    value = row[name]
    if value is None:
        return ""
    if name == "attempts":
        return orjson.dumps(value).decode()
    if name == "created_at":
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


@router.get("/summary")
async def summary(
    rt: RuntimeDep,
    _: AdminDep,
    group_by: Literal["model", "token", "group", "channel", "day", "hour"],
    since: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    until: Annotated[str | None, Query(alias="to", max_length=64)] = None,
    token: FilterText = None,
    model: FilterText = None,
    group: FilterText = None,
    channel: FilterText = None,
    status: Literal["success", "failed"] | None = None,
) -> Response:
    f = _filter(token, model, group, channel, status, since, until)
    async with rt.sessionmaker() as session:
        rows = await repo.usage_summary(session, f, group_by)
    data = [_summary_view(r) for r in rows]
    total = {name: sum(d[name] for d in data) for name in ("requests", "errors", "images", *SUMMED[1:])}
    return _json({"object": "usage.summary", "group_by": group_by, "data": data, "total": total})


def _summary_view(row: RowMapping) -> dict[str, Any]:
    return {
        "key": row["key"],
        "requests": int(row["requests"]),
        "errors": int(row["errors"]),  # failed requests
        "images": int(row["image_count"]),
        **{name: int(row[name]) for name in SUMMED[1:]},
    }
