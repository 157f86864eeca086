"""GET /v1/models (`GET /v1/me` is in `api/me.py`)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from gateway.api.deps import CallerDep, RuntimeDep

router = APIRouter()


def _json(data: object) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


@router.get("/v1/models")
@router.get("/v1beta/openai/models")
async def list_models(rt: RuntimeDep, caller: CallerDep) -> Response:
    """Models the token can reach (§1): through its own group, then through each of its
    `allowed_groups` in order; each model once, cut to the token's own allow-list."""
    models: dict[str, None] = {}  # insertion-ordered set
    for group in (caller.group, *caller.allowed_groups):
        models.update((m, None) for m in rt.catalog.models(group) if caller.may_use_model(m))
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "gateway"} for m in models]
    return _json({"object": "list", "data": data})
