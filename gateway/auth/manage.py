"""Token management shared by the admin API and the CLI: create, rotate, and the JSON view."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.tokens import display_prefix, generate_key, hash_key, new_token_id
from gateway.db import repositories as repo
from gateway.db.models import Token

MICRO = Decimal(1_000_000)


def usd_to_micro(value: Decimal | float | str) -> int:
    return int((Decimal(str(value)) * MICRO).to_integral_value(rounding=ROUND_HALF_UP))


def micro_to_usd(value: int | None) -> float | None:
    return None if value is None else float(Decimal(value) / MICRO)


async def create(
    session: AsyncSession, *, name: str, group: str = "default", **fields: Any
) -> tuple[Token, str]:
    """A new active token; returns the row and the clear key (shown once, never stored)."""
    key = generate_key()
    values: dict[str, Any] = {
        "allowed_groups": [],
        "models": None,
        "quota_micro_usd": None,
        "used_micro_usd": 0,
        "status": "active",
        **fields,
    }
    token = await repo.create_token(
        session,
        id=new_token_id(),
        name=name,
        group=group,
        key_hash=hash_key(key),
        key_prefix=display_prefix(key),
        created_at=datetime.now(UTC),
        **values,
    )
    return token, key


async def rotate(session: AsyncSession, token_id: str) -> str | None:
    """A new key for the token; the old one stops matching at once. None if there is no such token."""
    key = generate_key()
    ok = await repo.update_token(
        session, token_id, {"key_hash": hash_key(key), "key_prefix": display_prefix(key)}
    )
    return key if ok else None


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def token_view(token: Token, held: int = 0) -> dict[str, Any]:
    """The token as the admin API shows it; `held`: the block of its quota this process holds, not spent
    yet (billing/leases.py), so not shown as used."""
    quota = token.quota_micro_usd
    used = max(token.used_micro_usd - held, 0)
    remaining = None if quota is None else max(quota - used, 0)  # never shown below zero
    return {
        "id": token.id,
        "object": "token",
        "name": token.name,
        "key_prefix": token.key_prefix,
        "group": token.group,
        "allowed_groups": list(token.allowed_groups or []),
        "models": token.models,
        "quota_usd": micro_to_usd(quota),
        "used_usd": micro_to_usd(used),
        "remaining_usd": micro_to_usd(remaining),
        "expires_at": _iso(token.expires_at),
        "status": token.status,
        "rpm_limit": token.rpm_limit,
        "max_concurrency": token.max_concurrency,
        "chat_image_field": token.chat_image_field,
        "created_at": _iso(token.created_at),
        "last_used_at": _iso(token.last_used_at),
    }
