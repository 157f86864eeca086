"""The one place that builds error JSON (§2): gateway errors, validation errors, unknown routes, crashes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from gateway.db.errors import DATABASE_ERRORS, describe, is_outage
from gateway.errors import GatewayError, InvalidRequest, ServiceUnavailable

log = logging.getLogger("gateway.api")


def error_response(exc: GatewayError) -> Response:
    return Response(
        orjson.dumps(exc.body()), status_code=exc.status, media_type="application/json", headers=exc.headers
    )


def validation_error(errors: Sequence[Any]) -> InvalidRequest:
    """The first pydantic error as a 400 with `param` set to the field's dotted path."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    param = ".".join(loc) or None
    kind = str(first.get("type", "invalid"))
    code = "missing_required_parameter" if kind == "missing" else "invalid_value"
    msg = str(first.get("msg", "Invalid request.")).removeprefix("Value error, ")
    return InvalidRequest(f"Invalid value for '{param}': {msg}." if param else msg, code=code, param=param)


async def _gateway_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(validation_error(exc.errors()))


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. The router names only the first route that matched
    the path, and the admin API serves one path with a route per method."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {
        404: ("not_found", "invalid_request_error"),
        405: ("method_not_allowed", "invalid_request_error"),
    }
    code, kind = codes.get(exc.status_code, ("http_error", "invalid_request_error"))
    message = "Unknown URL." if exc.status_code == 404 else str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # a 405 says which methods are allowed (RFC 9110)
        headers["Allow"] = _allowed_methods(request)
    return error_response(
        GatewayError(message, status=exc.status_code, type=kind, code=code, headers=headers)
    )


def database_unavailable(exc: BaseException) -> GatewayError | None:
    """A database outage met anywhere (admin API, usage API, billing) is a 503, logged in one line."""
    if not is_outage(exc):
        return None
    log.error("the database is unavailable: %s", describe(exc))
    return ServiceUnavailable("The gateway cannot reach its database right now; please try again shortly.")


async def _database_error(_: Request, exc: Exception) -> Response:
    error = database_unavailable(exc)
    if error is None:
        raise exc  # not an outage: the crash handler answers it (and the edge logs it)
    return error_response(error)


async def _crash(_: Request, exc: Exception) -> Response:
    # The edge logs it when the framework re-raises; here it only gets the §2 shape.
    return error_response(GatewayError("The server had an error while processing your request."))


def install(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, _database_error)
    app.add_exception_handler(Exception, _crash)
