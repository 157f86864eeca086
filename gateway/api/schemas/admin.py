"""Admin API bodies for tokens."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_USD = Decimal(9_000_000_000_000)  # fits the micro-USD BIGINT columns
MAX_INT = 2**31 - 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenFields(_Strict):
    group: str | None = Field(None, min_length=1)
    allowed_groups: list[str] | None = None
    models: list[str] | None = None
    quota_usd: Decimal | None = Field(None, ge=0, le=MAX_USD)
    expires_at: datetime | None = None
    status: Literal["active", "disabled"] | None = None
    rpm_limit: int | None = Field(None, ge=1, le=MAX_INT)
    max_concurrency: int | None = Field(None, ge=1, le=MAX_INT)
    chat_image_field: Literal["none", "list_data", "object_url"] | None = None


class TokenCreate(TokenFields):
    name: str = Field(min_length=1, max_length=200)


class TokenPatch(TokenFields):
    name: str | None = Field(None, min_length=1, max_length=200)
    add_quota_usd: Decimal | None = Field(None, ge=-MAX_USD, le=MAX_USD)
