"""What a job keeps and shows: its images as URLs when storage exists, its JSON as the GET answers it.

The rule for a job's images: with object storage configured, every image of a job's result is a URL
(base64 is stored and replaced, `response_format: b64_json` included), because the result lives in a
database row until it is purged, and a row of 20 MB base64 is a burden on every node and every backup.
Without storage the base64 is kept, up to `jobs.max_result_mb` of JSON; a larger result fails the job.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.db.models import ImageJob
from gateway.domain import answer_json
from gateway.errors import GatewayError
from gateway.images.output import Delivery, deliver
from gateway.pipeline.images import ImageRequest
from gateway.runtime import Runtime

OBJECT = "image.job"


class JobResultTooLarge(GatewayError):
    status = 502
    type = "server_error"
    code = "job_result_too_large"


def for_job(rt: Runtime, req: ImageRequest) -> ImageRequest:
    """With storage, ask for what becomes a URL: base64 asked for is stored anyway (see the rule)."""
    if rt.store is not None and req.response_format == "b64_json":
        return dataclasses.replace(req, response_format=None)
    return req


async def stored_answer(rt: Runtime, body: dict[str, Any], max_bytes: int) -> str:
    """The answer as the JSON text the job row keeps."""
    data = body.get("data")
    if rt.store is not None and isinstance(data, list):
        how = Delivery(
            wanted="url",
            store=rt.store,
            fetcher=rt.fetcher,
            upload_attempts=rt.settings.storage.upload_attempts,
            rehost_urls=False,
            base64_allowed=True,  # storage down: keep the base64 (the size cap still applies)
        )
        await deliver(data, how)
    text = answer_json(body)
    if len(text) > max_bytes:
        raise JobResultTooLarge(
            f"The job's answer is {len(text) // (1024 * 1024)} MB of base64, over jobs.max_result_mb; "
            "ask for fewer or smaller images, or call without Prefer: respond-async. "
            "With object storage configured, a job's images are kept as URLs instead."
        )
    return text.decode()


def epoch(moment: datetime) -> int:
    """Seconds since the epoch; SQLite hands back naive datetimes, which the gateway writes in UTC."""
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def accepted_json(job_id: str, created: datetime) -> bytes:
    return orjson.dumps({"id": job_id, "object": OBJECT, "status": "queued", "created": epoch(created)})


def job_json(job: ImageJob) -> bytes:
    """The GET answer; the stored result is spliced in as it is, never parsed again."""
    view: dict[str, Any] = {
        "id": job.id,
        "object": OBJECT,
        "status": job.status,
        "created": epoch(job.created_at),
    }
    if job.finished_at is not None:
        view["completed_at"] = epoch(job.finished_at)
    if job.status == "succeeded" and job.result is not None:
        view["result"] = orjson.Fragment(job.result)
    elif job.status == "failed" and job.error is not None:
        view["error"] = job.error
    return orjson.dumps(view)
