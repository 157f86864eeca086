"""Admin token endpoints: create (key shown once), list, get, patch, delete, rotate."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.api.admin.deps import AdminDep, FilterText
from gateway.api.deps import RuntimeDep, read_json, validate
from gateway.api.schemas.admin import TokenCreate, TokenFields, TokenPatch
from gateway.auth import manage
from gateway.db import repositories as repo
from gateway.db.models import Token
from gateway.errors import InvalidRequest, NotFound
from gateway.runtime import Runtime

router = APIRouter(prefix="/admin/tokens")


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _not_found(token_id: str) -> NotFound:
    return NotFound(f"No token with id '{token_id}'.", code="token_not_found")


def _columns(rt: Runtime, fields: TokenFields) -> dict[str, Any]:
    """Translate the API fields that were set into table columns, checking groups exist."""
    values = fields.model_dump(exclude_unset=True, exclude={"add_quota_usd"})
    checks = [("group", values.get("group"))] + [
        ("allowed_groups", g) for g in values.get("allowed_groups") or []
    ]
    for param, group in checks:
        if group is not None and group not in rt.settings.groups:
            raise InvalidRequest(f"Group '{group}' is not declared in the config.", param=param)
    if "quota_usd" in values:
        quota = values.pop("quota_usd")
        values["quota_micro_usd"] = None if quota is None else manage.usd_to_micro(quota)
    if values.get("expires_at") is not None and values["expires_at"].tzinfo is None:
        values["expires_at"] = values["expires_at"].replace(tzinfo=UTC)
    if values.get("chat_image_field") == "none":
        values["chat_image_field"] = None
    return values


def _view(rt: Runtime, token: Token) -> dict[str, Any]:
    return manage.token_view(token, rt.quota.leases.held(token.id))


@router.post("")
async def create_token(request: Request, rt: RuntimeDep, _: AdminDep) -> Response:
    spec = validate(TokenCreate, await read_json(request, 1 << 20))
    values = _columns(rt, spec)
    values.pop("name", None)
    async with rt.sessionmaker() as session, session.begin():
        token, key = await manage.create(session, name=spec.name, **values)
        view = manage.token_view(token)
    return _json({**view, "key": key}, status=201)


@router.get("")
async def list_tokens(
    rt: RuntimeDep,
    _: AdminDep,
    group: FilterText = None,
    status: FilterText = None,
    q: FilterText = None,
    cursor: FilterText = None,
    limit: int = 50,
) -> Response:
    limit = max(1, min(limit, 500))
    async with rt.sessionmaker() as session:
        rows = await repo.list_tokens(session, group=group, status=status, q=q, after=cursor, limit=limit + 1)
    page = rows[:limit]
    next_cursor = page[-1].id if len(rows) > limit else None
    return _json({"object": "list", "data": [_view(rt, t) for t in page], "next_cursor": next_cursor})


@router.get("/{token_id}")
async def get_token(token_id: str, rt: RuntimeDep, _: AdminDep) -> Response:
    async with rt.sessionmaker() as session:
        token = await repo.get_token(session, token_id)
    if token is None:
        raise _not_found(token_id)
    return _json(_view(rt, token))


@router.patch("/{token_id}")
async def patch_token(token_id: str, request: Request, rt: RuntimeDep, _: AdminDep) -> Response:
    patch = validate(TokenPatch, await read_json(request, 1 << 20))
    values = _columns(rt, patch)
    async with rt.sessionmaker() as session, session.begin():
        if not await repo.update_token(session, token_id, values):
            raise _not_found(token_id)
        if patch.add_quota_usd is not None:
            await repo.add_quota(session, token_id, manage.usd_to_micro(patch.add_quota_usd))
    await rt.forget_token(token_id)
    async with rt.sessionmaker() as session:
        token = await repo.get_token(session, token_id)
    if token is None:
        raise _not_found(token_id)
    return _json(_view(rt, token))


@router.delete("/{token_id}")
async def delete_token(token_id: str, rt: RuntimeDep, _: AdminDep) -> Response:
    async with rt.sessionmaker() as session, session.begin():
        deleted = await repo.delete_token(session, token_id)
    await rt.forget_token(token_id)
    if not deleted:
        raise _not_found(token_id)
    return _json({"id": token_id, "object": "token", "deleted": True})


@router.post("/{token_id}/rotate")
async def rotate_token(token_id: str, rt: RuntimeDep, _: AdminDep) -> Response:
    async with rt.sessionmaker() as session, session.begin():
        key = await manage.rotate(session, token_id)
        token = await repo.get_token(session, token_id) if key else None
        view = _view(rt, token) if token else None
    await rt.forget_token(token_id)
    if key is None or view is None:
        raise _not_found(token_id)
    return _json({**view, "key": key})
