"""GET /healthz (the process answers) and GET /readyz (the database and object storage answer, and the
process is not shutting down: from SIGTERM on it says 503 so that load balancers stop sending to it)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import Response

from gateway.api.deps import RuntimeDep
from gateway.errors import ServiceUnavailable

router = APIRouter()
DRAINING = b'{"status":"shutting_down","checks":{}}'


@router.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@router.get("/readyz")
async def readyz(request: Request, rt: RuntimeDep) -> Response:
    drain = getattr(request.app.state, "drain", None)
    if drain is not None and drain.draining:
        return Response(DRAINING, status_code=503, media_type="application/json")
    checks: dict[str, str] = {}
    try:
        async with rt.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["database"] = f"error: {type(exc).__name__}"
    if rt.store is not None:
        try:
            await rt.store.check()
            checks["storage"] = "ok"
        except Exception as exc:  # readiness reports, it does not raise
            checks["storage"] = f"error: {type(exc).__name__}"
    failed = [f"{name} ({state})" for name, state in checks.items() if state != "ok"]
    if not failed:
        return Response(orjson.dumps({"status": "ok", "checks": checks}), media_type="application/json")
    # A probe reads the status; a person or an OpenAI-style client reads the §2 error beside the checks.
    error = ServiceUnavailable(f"Not ready: {', '.join(failed)}.", code="not_ready")
    body = {**error.body(), "status": "unavailable", "checks": checks}
    return Response(orjson.dumps(body), status_code=503, media_type="application/json")
