"""The SQL of async image jobs (§4.6): leases, results, interruption with a refund, the purge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import ImageJob
from gateway.db.repositories import refund_used

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
            await refund_used(session, token_id, amount)
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
