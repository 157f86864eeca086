"""Admin API token bodies: what the routes accept and (for the OpenAPI document) what they answer."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_USD = Decimal(9_000_000_000_000)  # fits the micro-USD BIGINT columns
MAX_INT = 2**31 - 1


NOT_NULL = ("name", "group", "status")  # may be left out, never null


def _not_null_in_schema(schema: dict[str, Any]) -> None:
    for name, prop in schema.get("properties", {}).items():
        if name in NOT_NULL and "anyOf" in prop:
            kept = [choice for choice in prop.pop("anyOf") if choice != {"type": "null"}]
            prop.pop("default", None)
            prop.update(kept[0])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_not_null_in_schema)

    @field_validator(*NOT_NULL, mode="before", check_fields=False)
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("it may be left out, but not null")
        return value


# Money: a JSON number, or a decimal string for exact amounts.
_USD = "USD, a number or a decimal string"


class TokenFields(_Strict):
    # null clears a field, except those in NOT_NULL.
    group: str | None = Field(
        None, min_length=1, description="a group declared in the config (default `default`)"
    )
    allowed_groups: list[str] | None = Field(None, description="groups the token may pick with `group`")
    models: list[str] | None = Field(None, description="allow-list of models; null: every model")
    quota_usd: Decimal | None = Field(None, ge=0, le=MAX_USD, description=f"{_USD}; null: unlimited")
    expires_at: datetime | None = Field(None, description="ISO 8601 (UTC when no offset); null: never")
    status: Literal["active", "disabled"] | None = None
    rpm_limit: int | None = Field(None, ge=1, le=MAX_INT, description="requests per minute; null: no limit")
    max_concurrency: int | None = Field(None, ge=1, le=MAX_INT, description="null: no limit")
    chat_image_field: Literal["none", "list_data", "object_url"] | None = Field(
        None, description="the chat answers' `message.image` field (§3.2); null: the global setting"
    )


class TokenCreate(TokenFields):
    name: str = Field(min_length=1, max_length=200)


class TokenPatch(TokenFields):
    name: str | None = Field(None, min_length=1, max_length=200)
    add_quota_usd: Decimal | None = Field(
        None, ge=-MAX_USD, le=MAX_USD, description=f"{_USD}: added to the quota in one statement"
    )


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
