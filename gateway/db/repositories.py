"""All SQL of the gateway. Functions take a session and return rows or plain values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    RowMapping,
    Select,
    Table,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.db.base import Base
from gateway.db.inline import InlineTransaction
from gateway.db.models import Token, UsageRecordRow
from gateway.db.usage_rows import insert_rows, usage_rows
from gateway.domain import UsageRecord

USAGE_TABLE = Table("usage_records", Base.metadata)  # the mapped table, for Core statements

# Fields an admin may change with PATCH (§7): everything of §6.3 but the key and the counters.
TOKEN_MUTABLE_FIELDS = frozenset(
    {
        "name",
        "group",
        "allowed_groups",
        "models",
        "quota_micro_usd",
        "expires_at",
        "status",
        "rpm_limit",
        "max_concurrency",
        "chat_image_field",
    }
)


# Quota statements run on a bare connection (no ORM work), or inline on SQLite (db/inline.py).
Executor = AsyncSession | AsyncConnection | InlineTransaction


async def create_token(session: AsyncSession, **values: Any) -> Token:
    token = Token(**values)
    session.add(token)
    await session.flush()
    return token


async def get_token(session: AsyncSession, token_id: str) -> Token | None:
    return await session.get(Token, token_id)


async def get_token_by_hash(session: AsyncSession, key_hash: str) -> Token | None:
    result = await session.execute(select(Token).where(Token.key_hash == key_hash))
    return result.scalar_one_or_none()


async def list_tokens(
    session: AsyncSession,
    *,
    group: str | None = None,
    status: str | None = None,
    q: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> Sequence[Token]:
    stmt = select(Token).order_by(Token.id).limit(limit)
    if group is not None:
        stmt = stmt.where(Token.group == group)
    if status is not None:
        stmt = stmt.where(Token.status == status)
    if q:
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(or_(func.lower(Token.name).like(pattern), Token.key_prefix.like(f"{q}%")))
    if after is not None:
        stmt = stmt.where(Token.id > after)
    return (await session.execute(stmt)).scalars().all()


async def update_token(session: AsyncSession, token_id: str, values: dict[str, Any]) -> bool:
    unknown = set(values) - TOKEN_MUTABLE_FIELDS - {"key_hash", "key_prefix"}
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    if not values:
        return await get_token(session, token_id) is not None
    result = await session.execute(update(Token).where(Token.id == token_id).values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def add_quota(session: AsyncSession, token_id: str, micro_usd: int) -> bool:
    """Add to a token's quota in one statement; an unlimited (null) quota starts from zero, and a
    negative amount takes the quota down to zero at most."""
    added = func.coalesce(Token.quota_micro_usd, 0) + micro_usd
    stmt = update(Token).where(Token.id == token_id).values(quota_micro_usd=case((added < 0, 0), else_=added))
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


# -- quota (§6.5): each function is one statement, run in its own short transaction by the ledger ------


# Built once: a reservation runs on every priced request of a token with a quota, and building the
# statement costs as much as executing it.
CHARGE_WITHIN_QUOTA = (
    update(Token)
    .where(
        Token.id == bindparam("token_id"),
        or_(
            Token.quota_micro_usd.is_(None),
            Token.quota_micro_usd - Token.used_micro_usd >= bindparam("micro_usd"),
        ),
    )
    .values(used_micro_usd=Token.used_micro_usd + bindparam("micro_usd"))
    .execution_options(synchronize_session=False)
)


async def charge_within_quota(session: Executor, token_id: str, micro_usd: int) -> bool:
    """Add to `used` only if the quota covers it (or is unlimited): the atomic reservation. Concurrent
    calls, on one node or many, can never take a token below zero: the condition is checked on the row
    as it is at the update (PostgreSQL re-reads a row another transaction changed; SQLite has one writer)."""
    result = await session.execute(CHARGE_WITHIN_QUOTA, {"token_id": token_id, "micro_usd": micro_usd})
    return bool(result.rowcount)  # type: ignore[union-attr]


_LESS_USED = Token.used_micro_usd - bindparam("micro_usd")
REFUND_USED = (
    update(Token)
    .where(Token.id == bindparam("token_id"))
    .values(used_micro_usd=case((_LESS_USED < 0, 0), else_=_LESS_USED))
    .execution_options(synchronize_session=False)
)


async def refund_used(session: Executor, token_id: str, micro_usd: int) -> None:
    """Take back part of `used` (never below zero)."""
    await session.execute(REFUND_USED, {"token_id": token_id, "micro_usd": micro_usd})


async def quota_state(session: Executor, token_id: str) -> tuple[int | None, int] | None:
    """(quota, used) of a token, or None if it is gone."""
    row = (
        await session.execute(select(Token.quota_micro_usd, Token.used_micro_usd).where(Token.id == token_id))
    ).first()
    return None if row is None else (row[0], row[1])


async def charge_if_unchanged(
    session: Executor, token_id: str, seen_used: int, seen_quota: int, micro_usd: int
) -> bool:
    """Add to `used` only if `used` and the quota are still what the caller read (compare and set)."""
    stmt = (
        update(Token)
        .where(
            Token.id == token_id,
            Token.used_micro_usd == seen_used,
            Token.quota_micro_usd == seen_quota,
        )
        .values(used_micro_usd=Token.used_micro_usd + micro_usd)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[union-attr]


async def delete_token(session: AsyncSession, token_id: str) -> bool:
    result = await session.execute(delete(Token).where(Token.id == token_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def insert_usage_records(
    session: AsyncSession | InlineTransaction, records: Iterable[UsageRecord]
) -> None:
    """Insert records, each made to fit its columns first (§6.5: a record is never refused)."""
    await insert_rows(session, USAGE_TABLE, usage_rows(records))


TOUCH_TOKEN = (
    update(Token)
    .where(Token.id == bindparam("token_id"))
    .values(last_used_at=bindparam("when"))
    .execution_options(synchronize_session=False)
)


async def touch_tokens(session: AsyncSession | InlineTransaction, last_used: dict[str, datetime]) -> None:
    for token_id, when in last_used.items():
        await session.execute(TOUCH_TOKEN, {"token_id": token_id, "when": when})


async def list_usage_records(
    session: AsyncSession, *, token_id: str | None = None, limit: int = 100
) -> Sequence[UsageRecordRow]:
    stmt = select(UsageRecordRow).order_by(UsageRecordRow.id.desc()).limit(limit)
    if token_id is not None:
        stmt = stmt.where(UsageRecordRow.token_id == token_id)
    return (await session.execute(stmt)).scalars().all()


# -- the usage API (§7) ------------------------------------------------------------------------------

SUMMARY_GROUPS = ("model", "token", "group", "channel", "day")


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Filters of the usage endpoints; `since` is inclusive, `until` exclusive (both UTC)."""

    token_id: str | None = None
    model: str | None = None
    group: str | None = None
    channel: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(stmt: Select[Any], f: UsageFilter) -> Select[Any]:
    c = USAGE_TABLE.c
    for column, value in (
        (c["token_id"], f.token_id),
        (c["model"], f.model),
        (c["group"], f.group),
        (c["channel"], f.channel),
        (c["status"], f.status),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if f.since is not None:
        stmt = stmt.where(c["created_at"] >= f.since)
    if f.until is not None:
        stmt = stmt.where(c["created_at"] < f.until)
    return stmt


async def usage_records_page(
    session: AsyncSession, f: UsageFilter, *, before_id: int | None, limit: int
) -> Sequence[RowMapping]:
    """Newest first, keyset-paged on the id: each page is one bounded query, however deep."""
    stmt = _filtered(select(USAGE_TABLE), f).order_by(USAGE_TABLE.c["id"].desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(USAGE_TABLE.c["id"] < before_id)
    rows: Sequence[RowMapping] = (await session.execute(stmt)).mappings().all()
    return rows


async def usage_summary(session: AsyncSession, f: UsageFilter, group_by: str) -> Sequence[RowMapping]:
    """Requests, errors, images, tokens and cost per model, token, group, channel, UTC day or UTC hour.

    An hour's key is the ISO time it starts at (`2026-03-01T13:00:00Z`), a day's its date.
    """
    c = USAGE_TABLE.c
    key: ColumnElement[Any]
    postgres = session.get_bind().dialect.name == "postgresql"
    if group_by == "day":
        if postgres:
            key = func.to_char(func.timezone("UTC", c["created_at"]), "YYYY-MM-DD")
        else:  # SQLite keeps UTC times as text: the date is its first ten characters
            key = func.substr(c["created_at"], 1, 10)
    elif group_by == "hour":
        if postgres:
            key = func.to_char(func.timezone("UTC", c["created_at"]), 'YYYY-MM-DD"T"HH24":00:00Z"')
        else:  # "2026-03-01 13:04:05.000000": the date, then the hour at characters 12-13
            day, hour = func.substr(c["created_at"], 1, 10), func.substr(c["created_at"], 12, 2)
            key = day.concat("T").concat(hour).concat(":00:00Z")
    else:
        key = c["token_id" if group_by == "token" else group_by]
    stmt = select(
        key.label("key"),
        func.count().label("requests"),
        func.coalesce(func.sum(case((c["status"] == "failed", 1), else_=0)), 0).label("errors"),
        *(
            func.coalesce(func.sum(c[name]), 0).label(name)
            for name in (
                "image_count",
                "prompt_tokens",
                "completion_tokens",
                "total_tokens",
                "cost_micro_usd",
                "shortfall_micro_usd",
            )
        ),
    )
    stmt = _filtered(stmt, f).group_by(key).order_by(key)
    return (await session.execute(stmt)).mappings().all()
