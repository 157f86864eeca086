"""Async image jobs over HTTP (§4.6): `Prefer: respond-async` gets 202 and a job id at once, and
`GET /v1/images/jobs/{id}` answers its status, then its result or its §2 error, on any node.

`Prefer` is a preference (RFC 7240): a streamed request (`stream: true`) is answered as a stream."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.deps import CallerDep, request_id
from gateway.domain import Caller
from gateway.errors import NotFound
from gateway.jobs import results
from gateway.jobs.runner import JobRunner
from gateway.pipeline.common import route
from gateway.pipeline.images import ImageRequest
from gateway.runtime import Runtime

router = APIRouter()
MAX_ID_LEN = 40


def wants_async(request: Request) -> bool:
    prefer = request.headers.get("prefer")
    if not prefer:
        return False
    for preference in prefer.split(","):
        name = preference.split(";", 1)[0].split("=", 1)[0].strip().lower()
        if name == "respond-async":
            return True
    return False


def runner_of(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner


async def accept(request: Request, rt: Runtime, caller: Caller, req: ImageRequest) -> Response:
    """202 with the queued job. A model or group the token may not use is refused now, not in the job."""
    route(rt, caller, req.model, req.group, req.operation)
    job_id, created = await runner_of(request).submit(
        caller, req, request_id=request_id(request), endpoint=request.scope["path"]
    )
    headers = {"preference-applied": "respond-async", "location": f"/v1/images/jobs/{job_id}"}
    return Response(
        results.accepted_json(job_id, created),
        status_code=202,
        media_type="application/json",
        headers=headers,
    )


@router.get("/v1/images/jobs/{job_id}")
async def get_job(job_id: str, request: Request, caller: CallerDep) -> Response:
    # Ids are `imgjob_` + hex: anything else (a NUL, which PostgreSQL text refuses) is not looked up.
    well_formed = len(job_id) <= MAX_ID_LEN and job_id.isascii() and job_id.replace("_", "").isalnum()
    body = await runner_of(request).view(job_id, caller.token_id) if well_formed else None
    if body is None:  # another token's job is not found either (§2)
        raise NotFound(f"No job found with id '{job_id[:MAX_ID_LEN]!r}'.", code="job_not_found")
    return Response(body, media_type="application/json")
