"""All SQL of the gateway. Functions take a session and return rows or plain values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.base import Base
from gateway.db.models import ImageJob, Token, UsageRecordRow
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
    """Add to a token's quota in one statement; an unlimited (null) quota starts from zero."""
    stmt = (
        update(Token)
        .where(Token.id == token_id)
        .values(quota_micro_usd=func.coalesce(Token.quota_micro_usd, 0) + micro_usd)
    )
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def delete_token(session: AsyncSession, token_id: str) -> bool:
    result = await session.execute(delete(Token).where(Token.id == token_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def insert_usage_records(session: AsyncSession, records: Iterable[UsageRecord]) -> None:
    rows = [_usage_row(r) for r in records]
    if rows:  # a Core executemany: the ORM's bulk path costs several times more per row
        await session.execute(insert(USAGE_TABLE), rows)


async def touch_tokens(session: AsyncSession, last_used: dict[str, datetime]) -> None:
    for token_id, when in last_used.items():
        await session.execute(update(Token).where(Token.id == token_id).values(last_used_at=when))


async def list_usage_records(
    session: AsyncSession, *, token_id: str | None = None, limit: int = 100
) -> Sequence[UsageRecordRow]:
    stmt = select(UsageRecordRow).order_by(UsageRecordRow.id.desc()).limit(limit)
    if token_id is not None:
        stmt = stmt.where(UsageRecordRow.token_id == token_id)
    return (await session.execute(stmt)).scalars().all()


async def refund_quota(session: AsyncSession, token_id: str, micro_usd: int) -> None:
    """Give back a reservation in one atomic statement (concurrent requests of the token are safe)."""
    await session.execute(
        update(Token)
        .where(Token.id == token_id)
        .values(used_micro_usd=Token.used_micro_usd - micro_usd)
        .execution_options(synchronize_session=False)
    )


# --- async image jobs (§4.6) ---------------------------------------------------------------------------

_LIVE_JOB = ("queued", "running")


async def insert_job(session: AsyncSession, **values: Any) -> None:
    session.add(ImageJob(**values))
    await session.flush()


async def get_job(session: AsyncSession, job_id: str, token_id: str) -> ImageJob | None:
    """A job as its own token sees it; another token's job is not found."""
    stmt = select(ImageJob).where(ImageJob.id == job_id, ImageJob.token_id == token_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def _update_job(
    session: AsyncSession, job_id: str, node: str, current: tuple[str, ...], **values: Any
) -> bool:
    """Change a job only while `node` holds it in one of the `current` statuses."""
    stmt = (
        update(ImageJob)
        .where(ImageJob.id == job_id, ImageJob.node == node, ImageJob.status.in_(current))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def start_job(session: AsyncSession, job_id: str, node: str) -> bool:
    """queued → running, only while `node` still holds the job."""
    return await _update_job(session, job_id, node, ("queued",), status="running")


async def set_job_reserved(session: AsyncSession, job_id: str, node: str, micro_usd: int) -> bool:
    return await _update_job(session, job_id, node, ("running",), reserved_micro_usd=micro_usd)


async def finish_job(
    session: AsyncSession,
    job_id: str,
    node: str,
    *,
    status: str,
    finished_at: datetime,
    result: str | None = None,
    error: dict[str, Any] | None = None,
) -> bool:
    """queued|running → succeeded|failed; False when the job is no longer this node's (lease lapsed)."""
    return await _update_job(
        session, job_id, node, _LIVE_JOB, status=status, result=result, error=error,
        reserved_micro_usd=0, finished_at=finished_at, lease_expires_at=None,
    )  # fmt: skip


async def renew_job_leases(session: AsyncSession, job_ids: Sequence[str], node: str, until: datetime) -> int:
    if not job_ids:
        return 0
    stmt = (
        update(ImageJob)
        .where(ImageJob.id.in_(job_ids), ImageJob.node == node, ImageJob.status.in_(_LIVE_JOB))
        .values(lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return int((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def interrupt_expired_jobs(
    session: AsyncSession, now: datetime, error: dict[str, Any], limit: int = 500
) -> list[tuple[str, str, int]]:
    """Fail every live job whose lease lapsed and refund what it held: (id, token_id, refunded).

    The status change is the guard: of several nodes sweeping at once, one changes a row and refunds it.
    """
    ids = (
        (
            await session.execute(
                select(ImageJob.id)
                .where(ImageJob.status.in_(_LIVE_JOB), ImageJob.lease_expires_at < now)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    if not ids:
        return []
    stmt = (
        update(ImageJob)
        .where(ImageJob.id.in_(ids), ImageJob.status.in_(_LIVE_JOB), ImageJob.lease_expires_at < now)
        .values(status="failed", error=error, finished_at=now, lease_expires_at=None)
        .returning(ImageJob.id, ImageJob.token_id, ImageJob.reserved_micro_usd)
        .execution_options(synchronize_session=False)
    )
    failed = [(row[0], row[1], int(row[2] or 0)) for row in (await session.execute(stmt)).all()]
    for _, token_id, amount in failed:
        if amount:
            await refund_quota(session, token_id, amount)
    held = [job_id for job_id, _, amount in failed if amount]
    if held:
        await session.execute(
            update(ImageJob)
            .where(ImageJob.id.in_(held))
            .values(reserved_micro_usd=0)
            .execution_options(synchronize_session=False)
        )
    return failed


async def purge_jobs(session: AsyncSession, finished_before: datetime) -> int:
    old = ImageJob.finished_at < finished_before
    if (await session.execute(select(ImageJob.id).where(old).limit(1))).first() is None:
        return 0  # nothing to delete: no write lock taken (SQLite has one for the whole file)
    return int((await session.execute(delete(ImageJob).where(old))).rowcount)  # type: ignore[attr-defined]


def _usage_row(r: UsageRecord) -> dict[str, Any]:
    u = r.usage
    return {
        "request_id": r.request_id,
        "created_at": r.created_at,
        "token_id": r.token_id,
        "group": r.group,
        "endpoint": r.endpoint,
        "model": r.model,
        "upstream_model": r.upstream_model,
        "channel": r.channel,
        "attempts": [a.as_dict() for a in r.attempts],
        "status": r.status,
        "http_status": r.http_status,
        "error_code": r.error_code,
        "stream": r.stream,
        "latency_ms": r.latency_ms,
        "ttfb_ms": r.ttfb_ms,
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "text_input_tokens": u.text_input_tokens,
        "cached_input_tokens": u.cached_input_tokens,
        "image_input_tokens": u.image_input_tokens,
        "text_output_tokens": u.text_output_tokens,
        "image_output_tokens": u.image_output_tokens,
        "image_count": r.image_count,
        "image_size": r.image_size,
        "image_quality": r.image_quality,
        "unit_price_micro_usd": r.unit_price_micro_usd,
        "cost_micro_usd": r.cost_micro_usd,
        "usage_estimated": r.usage_estimated,
    }
