"""Annotated dependencies: the Runtime, the authenticated caller, the request id, the JSON body."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from gateway.api.errors import validation_error
from gateway.api.streaming import WATCH_AFTER_SECONDS, DisconnectWatch
from gateway.domain import Caller, JSONObject
from gateway.errors import InvalidRequest, RequestTooLarge
from gateway.runtime import Runtime

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:  # async: a plain def would run in a thread
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def presented_key(request: Request) -> str | None:
    """Every accepted spelling (§1): Bearer, bare Authorization, x-api-key, x-goog-api-key, ?key=."""
    headers = request.headers
    auth = headers.get("authorization")
    if auth:
        scheme, _, rest = auth.strip().partition(" ")
        return rest.strip() if scheme.lower() == "bearer" and rest else auth.strip()
    return headers.get("x-api-key") or headers.get("x-goog-api-key") or request.query_params.get("key")


async def authenticate(request: Request, rt: Runtime) -> Caller:
    return await rt.auth.resolve(presented_key(request))


async def get_caller(request: Request, rt: RuntimeDep) -> Caller:
    return await authenticate(request, rt)


CallerDep = Annotated[Caller, Depends(get_caller)]


def request_id(request: Request) -> str:
    rid: str = request.scope.get("state", {}).get("request_id", "")
    return rid


async def read_body(request: Request, limit_bytes: int) -> bytes:
    """The raw body, refusing more than `limit_bytes` before reading it all."""
    length = request.headers.get("content-length")
    # ASCII digits only (str.isdigit() takes '²', which int() refuses); 19+ digits are too large anyway.
    if length and length.isascii() and length.isdigit() and (len(length) > 18 or int(length) > limit_bytes):
        raise _too_large(limit_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise _too_large(limit_bytes)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_json(request: Request, limit_bytes: int) -> JSONObject:
    """The body as a JSON object (400 `invalid_json` otherwise), within the size limit."""
    raw = await read_body(request, limit_bytes)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"We could not parse the JSON body of your request: {exc.msg}.", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body


def _too_large(limit_bytes: int) -> RequestTooLarge:
    return RequestTooLarge(f"The request body is larger than {limit_bytes // (1024 * 1024)} MB.")


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


async def until_disconnect(request: Request, work: Awaitable[T]) -> T | None:
    """Run `work`, cancelling it (and so the upstream call) if the client goes away first (None then)."""
    with DisconnectWatch(request.receive, WATCH_AFTER_SECONDS):
        return await work
    return None
