"""Tables: `tokens` (§6.3), `usage_records` (§6.5) and `image_jobs` (§4.6). Money is integer micro-USD."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    group: Mapped[str] = mapped_column(String(100), default="default", index=True)
    allowed_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    quota_micro_usd: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    used_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    rpm_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chat_image_field: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class UsageRecordRow(Base):
    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_token_id_created_at", "token_id", "created_at"),
        Index("ix_usage_records_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)  # edge.MAX_ID_LEN
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    token_id: Mapped[str] = mapped_column(String(40))
    group: Mapped[str] = mapped_column(String(100))
    endpoint: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    upstream_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(200), nullable=True)
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    ttfb_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    text_input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    image_input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    text_output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    image_output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    image_count: Mapped[int] = mapped_column(Integer, default=0)
    image_size: Mapped[str | None] = mapped_column(String(32), nullable=True)
    image_quality: Mapped[str | None] = mapped_column(String(32), nullable=True)
    unit_price_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    # The part of the cost the quota could not cover when settling (the quota went to exactly zero).
    shortfall_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    usage_estimated: Mapped[bool] = mapped_column(Boolean, default=False)


class ImageJob(Base):
    """An async image job (§4.6). While queued or running it is held by one process (`node`) until
    `lease_expires_at`, which that process keeps pushing forward; a lapsed lease means the process is
    gone. `reserved_micro_usd` is the quota the running call holds, refunded if the job is interrupted.
    `result` is the images answer as JSON text (kept as sent: never parsed again to answer a GET)."""

    __tablename__ = "image_jobs"
    __table_args__ = (
        Index("ix_image_jobs_status_lease_expires_at", "status", "lease_expires_at"),
        Index("ix_image_jobs_finished_at", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_id: Mapped[str] = mapped_column(String(40))
    request_id: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    node: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reserved_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
