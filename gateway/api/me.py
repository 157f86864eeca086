"""The calling token's balance: `GET /v1/me`, and the OpenAI dashboard billing endpoints that clients such
as NextChat read to show it (`/v1/dashboard/billing/subscription` and `/usage`, also without `/v1`).

The numbers come from the token's row, not from the auth cache (which may be seconds old). The dashboard
answers follow what one-api / new-api answer, which those clients are written against:
`hard_limit_usd` is the quota (1e8 for an unlimited token) and `total_usage` is what was used, in cents,
so that `hard_limit_usd - total_usage / 100` is what is left. `start_date` / `end_date` are accepted and
ignored: the usage is the token's whole use, the same line the quota is drawn from.
"""

from __future__ import annotations

from decimal import Decimal

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from gateway.api.deps import CallerDep, RuntimeDep
from gateway.db import repositories as repo
from gateway.domain import Caller
from gateway.errors import AuthenticationError
from gateway.runtime import Runtime

router = APIRouter()

UNLIMITED_USD = 100_000_000  # what one-api / new-api publish for an unlimited token; clients know it
MICRO = Decimal(1_000_000)


def _json(data: object) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def _usd(micro: int) -> float:
    return float(Decimal(micro) / MICRO)


async def _balance(rt: Runtime, caller: Caller) -> tuple[int | None, int]:
    """(quota, used) in micro-USD, read now: the block of quota this process holds is not used yet."""
    async with rt.sessionmaker() as session:
        state = await repo.quota_state(session, caller.token_id)
    if state is None:
        raise AuthenticationError("Incorrect API key provided.")
    quota, used = state
    return quota, max(used - rt.quota.leases.held(caller.token_id), 0)


@router.get("/v1/me")
async def me(rt: RuntimeDep, caller: CallerDep) -> Response:
    quota, used = await _balance(rt, caller)
    return _json(
        {
            "name": caller.name,
            "group": caller.group,
            "quota_usd": None if quota is None else _usd(quota),
            "used_usd": _usd(used),
            "remaining_usd": None if quota is None else _usd(max(quota - used, 0)),
            "expires_at": caller.expires_at.isoformat() if caller.expires_at else None,
        }
    )


@router.get("/v1/dashboard/billing/subscription")
@router.get("/dashboard/billing/subscription")
async def subscription(rt: RuntimeDep, caller: CallerDep) -> Response:
    quota, _ = await _balance(rt, caller)
    limit = UNLIMITED_USD if quota is None else _usd(quota)
    return _json(
        {
            "object": "billing_subscription",
            "has_payment_method": True,
            "soft_limit_usd": limit,
            "hard_limit_usd": limit,
            "system_hard_limit_usd": limit,
            "access_until": int(caller.expires_at.timestamp()) if caller.expires_at else 0,
        }
    )


@router.get("/v1/dashboard/billing/usage")
@router.get("/dashboard/billing/usage")
async def usage(rt: RuntimeDep, caller: CallerDep) -> Response:
    _, used = await _balance(rt, caller)
    return _json({"object": "list", "total_usage": float(Decimal(used) / 10_000)})  # cents
