"""GET /metrics: the Prometheus text exposition (§8.4); the admin token is required unless
`metrics.public: true`. With several workers it sums every worker's values (multiprocess mode)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from gateway import metrics
from gateway.api.admin.deps import require_admin
from gateway.api.deps import RuntimeDep

router = APIRouter()


@router.get("/metrics")
async def metrics_endpoint(request: Request, rt: RuntimeDep) -> Response:
    if not rt.settings.metrics.public:
        await require_admin(request, rt)
    metrics.USAGE_QUEUE_DEPTH.set(rt.usage.depth)  # this worker's, now; the others' come from their sampler
    body = await asyncio.to_thread(metrics.exposition)  # reads every worker's file in multiprocess mode
    return Response(body, media_type=CONTENT_TYPE_LATEST)
