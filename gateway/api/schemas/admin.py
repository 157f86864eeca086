"""Admin API token bodies: what the routes accept and (for the OpenAPI document) what they answer."""

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


class Token(BaseModel):
    """A token as the admin API shows it (never its key, only a display prefix)."""

    id: str
    object: Literal["token"]
    name: str
    key_prefix: str
    group: str
    allowed_groups: list[str]
    models: list[str] | None
    quota_usd: float | None = Field(description="null: unlimited")
    used_usd: float
    remaining_usd: float | None
    expires_at: str | None
    status: Literal["active", "disabled"]
    rpm_limit: int | None
    max_concurrency: int | None
    chat_image_field: str | None
    created_at: str | None
    last_used_at: str | None


class TokenWithKey(Token):
    key: str = Field(description="the full key: shown only in this answer")


class TokenList(BaseModel):
    object: Literal["list"]
    data: list[Token]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class TokenDeleted(BaseModel):
    id: str
    object: Literal["token"]
    deleted: Literal[True]
