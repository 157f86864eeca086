"""The job runner's lease, sweep and purge (§4.6): a lapsed lease fails the job `job_interrupted` and
refunds its reservation exactly once, whichever node sweeps; finished jobs are purged after the
retention; the reservation a running call reports is kept on the row; stopping interrupts what is left."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from gateway.billing import holds
from gateway.db import job_queries
from gateway.db import repositories as repo
from gateway.db.models import ImageJob, Token
from gateway.jobs import runner as runner_module
from gateway.jobs.runner import JobRunner
from gateway.pipeline.images import ImageResult
from tests.jobs.conftest import auth, new_key, runner, runtime, submit, wait_done

PROMPT = {"model": "mock-image", "prompt": "a red fox"}


def run(client: TestClient, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a coroutine function on the app's own event loop (its engine lives there)."""
    assert client.portal is not None
    return client.portal.call(functools.partial(fn, *args, **kwargs))


async def _token_id(client: TestClient, name: str) -> str:
    async with runtime(client).sessionmaker() as session:
        return str((await session.execute(select(Token.id).where(Token.name == name))).scalar_one())


async def _used(client: TestClient, token_id: str) -> int:
    async with runtime(client).sessionmaker() as session:
        token = await repo.get_token(session, token_id)
        assert token is not None
        return token.used_micro_usd


async def _job(client: TestClient, job_id: str) -> ImageJob | None:
    async with runtime(client).sessionmaker() as session:
        return await session.get(ImageJob, job_id)


async def _set(client: TestClient, model: type[Any], ident: str, **values: Any) -> None:
    async with runtime(client).sessionmaker() as session, session.begin():
        row = await session.get(model, ident)
        for name, value in values.items():
            setattr(row, name, value)


async def _insert(client: TestClient, job_id: str, token_id: str, **values: Any) -> None:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {"id": job_id, "token_id": token_id, "request_id": "req", "endpoint": "/v1/x",
                              "model": "mock-image", "status": "running", "node": "gone-node",
                              "lease_expires_at": now - timedelta(seconds=1), "reserved_micro_usd": 0,
                              "created_at": now, **values}  # fmt: skip
    async with runtime(client).sessionmaker() as session, session.begin():
        await job_queries.insert_job(session, **fields)


def test_a_lapsed_lease_fails_the_job_and_refunds_it_once(client: TestClient) -> None:
    key = new_key(client, "payer")
    token_id = run(client, _token_id, client, "payer")
    run(client, _set, client, Token, token_id, used_micro_usd=10_000)
    run(client, _insert, client, "imgjob_lapsed", token_id, reserved_micro_usd=2_500)
    live = datetime.now(UTC) + timedelta(minutes=5)
    run(client, _insert, client, "imgjob_alive", token_id, reserved_micro_usd=700, lease_expires_at=live)

    assert run(client, runner(client).sweep) == (1, 0)
    assert run(client, _used, client, token_id) == 7_500
    job = client.get("/v1/images/jobs/imgjob_lapsed", headers=auth(key)).json()
    assert job["status"] == "failed"
    assert job["error"]["code"] == "job_interrupted" and job["error"]["type"] == "server_error"
    row = run(client, _job, client, "imgjob_lapsed")
    assert row.reserved_micro_usd == 0 and row.lease_expires_at is None
    # A job whose node still renews its lease is left alone.
    assert client.get("/v1/images/jobs/imgjob_alive", headers=auth(key)).json()["status"] == "running"

    # A second sweep (this node again, or another one) finds nothing more to refund.
    assert run(client, runner(client).sweep) == (0, 0)
    assert run(client, _used, client, token_id) == 7_500


def test_two_nodes_sweeping_at_once_refund_once(client: TestClient) -> None:
    new_key(client, "payer")
    token_id = run(client, _token_id, client, "payer")
    run(client, _set, client, Token, token_id, used_micro_usd=10_000)
    for n in range(5):
        run(client, _insert, client, f"imgjob_lapsed{n}", token_id, reserved_micro_usd=1_000)
    other = JobRunner(runtime(client), runtime(client).settings.jobs)  # a second node on the same database

    async def both() -> list[tuple[int, int]]:
        return list(await asyncio.gather(runner(client).sweep(), other.sweep()))

    swept = run(client, both)
    assert sum(failed for failed, _ in swept) == 5
    assert run(client, _used, client, token_id) == 5_000


def test_finished_jobs_are_purged_after_the_retention(client: TestClient) -> None:
    key = new_key(client, "owner")
    old, recent = submit(client, key, PROMPT), submit(client, key, PROMPT)
    for job_id in (old, recent):
        wait_done(client, key, job_id)
    hours = runtime(client).settings.jobs.retention_hours
    run(
        client, _set, client, ImageJob, old, finished_at=datetime.now(UTC) - timedelta(hours=hours, minutes=1)
    )

    assert run(client, runner(client).sweep) == (0, 1)
    assert client.get(f"/v1/images/jobs/{old}", headers=auth(key)).status_code == 404
    assert client.get(f"/v1/images/jobs/{recent}", headers=auth(key)).json()["status"] == "succeeded"


class HeldPipeline:
    """Stands in for the images pipeline: reports a reservation, then waits to be released."""

    def __init__(self) -> None:
        self.reserved = threading.Event()
        self.release = threading.Event()
        self.cancelled = threading.Event()

    async def generate(self, *args: Any, **kwargs: Any) -> ImageResult:
        holds.report_reserved(4_200)
        self.reserved.set()
        try:
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        holds.report_reserved(0)  # settled
        return ImageResult({"created": 1, "data": [{"url": "https://example.test/a.png"}]})


def test_the_reservation_a_running_call_reports_is_kept_on_the_row(
    client: TestClient, monkeypatch: Any
) -> None:
    held = HeldPipeline()
    monkeypatch.setattr(runner_module.pipeline, "generate", held.generate)
    key = new_key(client)
    job_id = submit(client, key, PROMPT)
    assert held.reserved.wait(10)
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while run(client, _job, client, job_id).reserved_micro_usd != 4_200:
        assert datetime.now(UTC) < deadline
    assert client.get(f"/v1/images/jobs/{job_id}", headers=auth(key)).json()["status"] == "running"
    held.release.set()
    job = wait_done(client, key, job_id)
    assert job["status"] == "succeeded" and job["result"]["data"][0]["url"].endswith("a.png")
    assert run(client, _job, client, job_id).reserved_micro_usd == 0


def test_stopping_interrupts_the_jobs_left_running(client: TestClient, monkeypatch: Any) -> None:
    held = HeldPipeline()
    monkeypatch.setattr(runner_module.pipeline, "generate", held.generate)
    key = new_key(client)
    job_id = submit(client, key, PROMPT)
    assert held.reserved.wait(10)
    run(client, runner(client).stop, 0)
    assert held.cancelled.is_set()
    row = run(client, _job, client, job_id)
    assert row.status == "failed" and row.error["code"] == "job_interrupted" and row.reserved_micro_usd == 0


def test_a_node_with_too_many_jobs_in_hand_refuses_more(
    app_factory: Callable[..., TestClient], monkeypatch: Any
) -> None:
    held = HeldPipeline()
    monkeypatch.setattr(runner_module.pipeline, "generate", held.generate)
    client = app_factory(jobs={"max_running": 1, "max_queued": 1, "sweep_interval_seconds": 3600})
    key = new_key(client)
    running, queued = submit(client, key, PROMPT), submit(client, key, PROMPT)
    assert held.reserved.wait(10)
    refused = client.post("/v1/images/generations", json=PROMPT, headers=auth(key, Prefer="respond-async"))
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "too_many_jobs"
    assert client.get(f"/v1/images/jobs/{queued}", headers=auth(key)).json()["status"] == "queued"
    held.release.set()
    for job_id in (running, queued):
        assert wait_done(client, key, job_id)["status"] == "succeeded"


def test_a_running_jobs_lease_is_renewed_past_its_first_expiry(
    app_factory: Callable[..., TestClient], monkeypatch: Any
) -> None:
    held = HeldPipeline()
    monkeypatch.setattr(runner_module.pipeline, "generate", held.generate)
    client = app_factory(jobs={"lease_seconds": 0.3, "sweep_interval_seconds": 0.05})  # sweeps on its own
    key = new_key(client)
    job_id = submit(client, key, PROMPT)
    assert held.reserved.wait(10)
    first_expiry = run(client, _job, client, job_id).lease_expires_at
    deadline = time.monotonic() + 10
    while (row := run(client, _job, client, job_id)).lease_expires_at is not None:
        if row.lease_expires_at > first_expiry + timedelta(seconds=0.5):
            break  # renewals carried the lease well past where it first ran out
        assert time.monotonic() < deadline
    row = run(client, _job, client, job_id)
    assert row.status == "running" and datetime.now(UTC).replace(tzinfo=None) > first_expiry.replace(
        tzinfo=None
    )
    held.release.set()
    assert wait_done(client, key, job_id)["status"] == "succeeded"


def test_the_sweeper_runs_on_its_own(app_factory: Callable[..., TestClient]) -> None:
    client = app_factory(jobs={"sweep_interval_seconds": 0.05})
    key = new_key(client, "payer")
    token_id = run(client, _token_id, client, "payer")
    run(client, _insert, client, "imgjob_orphan", token_id)
    assert wait_done(client, key, "imgjob_orphan")["error"]["code"] == "job_interrupted"
