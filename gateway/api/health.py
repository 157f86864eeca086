"""GET /healthz (the process answers) and GET /readyz (the database and object storage answer, and the
process is not shutting down: from SIGTERM on it says 503 so that load balancers stop sending to it)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import Response

from gateway.api.deps import RuntimeDep

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
    ok = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if ok else "unavailable", "checks": checks}
    return Response(orjson.dumps(body), status_code=200 if ok else 503, media_type="application/json")
