"""Runs async image jobs in this process, each held under a lease in the database (§4.6).

A job is written `queued` with this process as its `node` and a lease, then run as the normal pipeline
call (which reserves and settles quota itself) once one of `jobs.max_running` slots is free. One task
renews the leases of every job this process holds, every third of `jobs.lease_seconds`. Another sweeps,
at start-up and every `jobs.sweep_interval_seconds`: a live job whose lease lapsed belongs to a process
that is gone, so it is marked `failed` / `job_interrupted` and the reservation it held is refunded (any
node may do this, once per job: the status change is the guard); finished jobs older than
`jobs.retention_hours` are deleted. Lease times are this node's clock: keep the nodes' clocks in sync.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway import metrics
from gateway.billing import holds
from gateway.db import job_queries
from gateway.domain import Caller
from gateway.errors import GatewayError, ServiceUnavailable
from gateway.jobs import results
from gateway.pipeline import images as pipeline
from gateway.pipeline.images import ImageRequest
from gateway.runtime import Runtime
from gateway.settings import JobsSettings

log = logging.getLogger("gateway.jobs")

INTERRUPTED = GatewayError(
    "The job was interrupted: the gateway process running it stopped before it finished. "
    "The quota it held was refunded; submit the request again.",
    code="job_interrupted",
)
CRASHED = GatewayError("The server had an error while processing your request.")
FINISH_TRIES = 3


def utcnow() -> datetime:
    return datetime.now(UTC)


def node_name() -> str:
    return f"{socket.gethostname()[:60]}/{os.getpid()}/{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # succeeded | failed
    result: str | None = None
    error: dict[str, Any] | None = None

    @classmethod
    def failed(cls, exc: GatewayError) -> Outcome:
        return cls("failed", error=exc.body()["error"])


class JobRunner:
    def __init__(self, rt: Runtime, settings: JobsSettings) -> None:
        self.rt = rt
        self.settings = settings
        self.node = node_name()
        self._slots = asyncio.Semaphore(settings.max_running)
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._reserved: dict[str, int] = {}  # what each running job's call holds, as last reported
        self._hold_writes = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._renew_forever(), name="jobs-lease-renewal"),
            asyncio.create_task(self._sweep_forever(), name="jobs-sweeper"),
        ]

    async def submit(
        self, caller: Caller, req: ImageRequest, *, request_id: str, endpoint: str
    ) -> tuple[str, datetime]:
        """Write the job (committed before the client hears of it) and start it; its id and time."""
        if len(self._jobs) >= self.settings.max_running + self.settings.max_queued:
            raise ServiceUnavailable(
                "This server has too many async jobs in hand; try again shortly.", code="too_many_jobs"
            )
        job_id, now = "imgjob_" + secrets.token_hex(12), utcnow()
        async with self.rt.sessionmaker() as session, session.begin():
            await job_queries.insert_job(
                session, id=job_id, token_id=caller.token_id, request_id=request_id[:64],
                endpoint=endpoint[:64], model=req.model[:200], status="queued", node=self.node,
                lease_expires_at=now + self.lease, reserved_micro_usd=0, created_at=now,
            )  # fmt: skip
        task = asyncio.create_task(self._run(job_id, caller, req, request_id, endpoint), name=job_id)
        self._jobs[job_id] = task
        task.add_done_callback(lambda _: self._jobs.pop(job_id, None))
        return job_id, now

    async def view(self, job_id: str, token_id: str) -> bytes | None:
        async with self.rt.sessionmaker() as session:
            job = await job_queries.get_job(session, job_id, token_id)
            return None if job is None else results.job_json(job)

    async def _run(
        self, job_id: str, caller: Caller, req: ImageRequest, request_id: str, endpoint: str
    ) -> None:
        try:
            async with self._slots:
                async with self.rt.sessionmaker() as session, session.begin():
                    started = await job_queries.start_job(session, job_id, self.node)
                if not started:
                    log.warning("job %s: its lease lapsed before it started; not run", job_id)
                    return
                outcome = await self._execute(job_id, caller, req, request_id, endpoint)
        except asyncio.CancelledError:  # this process stops: the call refunded itself as it unwound
            await self._finish(job_id, Outcome.failed(INTERRUPTED), "interrupted")
            raise
        await self._finish(job_id, outcome, outcome.status)

    async def _execute(
        self, job_id: str, caller: Caller, req: ImageRequest, request_id: str, endpoint: str
    ) -> Outcome:
        req = results.for_job(self.rt, req)
        with holds.reporting_to(lambda amount: self._hold(job_id, amount)):
            try:
                answer = await pipeline.generate(
                    self.rt, caller, req, request_id=request_id, endpoint=endpoint
                )
                text = await results.stored_answer(self.rt, answer.body, self.settings.max_result_bytes)
            except GatewayError as exc:
                metrics.rejected(exc.code)
                return Outcome.failed(exc)
            except Exception:
                log.exception("job %s failed", job_id)
                return Outcome.failed(CRASHED)
        return Outcome("succeeded", result=text)

    def _hold(self, job_id: str, micro_usd: int) -> None:
        """The call reserved (or settled) quota: write it on the row, so another node can refund it."""
        self._reserved[job_id] = micro_usd
        task = asyncio.get_running_loop().create_task(self._write_hold(job_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_hold(self, job_id: str) -> None:
        async with self._hold_writes:  # one at a time: a later report never lands before an earlier one
            amount = self._reserved.get(job_id)
            if amount is None:
                return  # finished meanwhile: the final write cleared it
            try:
                async with self.rt.sessionmaker() as session, session.begin():
                    await job_queries.set_job_reserved(session, job_id, self.node, amount)
            except Exception as exc:
                log.warning("job %s: could not record its reservation: %r", job_id, exc)

    async def _finish(self, job_id: str, outcome: Outcome, label: str) -> None:
        self._reserved.pop(job_id, None)
        async with self._hold_writes:
            pass  # a reservation write under way lands before the final state
        for attempt in range(FINISH_TRIES):
            try:
                async with self.rt.sessionmaker() as session, session.begin():
                    kept = await job_queries.finish_job(
                        session, job_id, self.node, status=outcome.status, finished_at=utcnow(),
                        result=outcome.result, error=outcome.error,
                    )  # fmt: skip
                break
            except Exception as exc:
                log.warning("job %s: recording its outcome failed (%d/%d): %r", job_id, attempt + 1,
                            FINISH_TRIES, exc)  # fmt: skip
                await asyncio.sleep(0.5 * 2**attempt)
        else:
            log.error("job %s: its outcome was not recorded; it will be marked interrupted", job_id)
            return
        if not kept:
            log.warning(
                "job %s ended after its lease lapsed and another node failed it; result dropped", job_id
            )
            return
        metrics.job_finished(label)

    async def _pause(self, seconds: float) -> bool:
        """Wait `seconds`; False once the runner stops (a loop never dies in the middle of a write)."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def _renew_forever(self) -> None:
        while await self._pause(self.settings.lease_seconds / 3):
            ids = list(self._jobs)
            if not ids:
                continue
            try:
                async with self.rt.sessionmaker() as session, session.begin():
                    await job_queries.renew_job_leases(session, ids, self.node, utcnow() + self.lease)
            except Exception as exc:
                log.warning("renewing the leases of %d job(s) failed: %r", len(ids), exc)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("job sweep failed: %r", exc)
            if not await self._pause(self.settings.sweep_interval_seconds):
                return

    async def sweep(self) -> tuple[int, int]:
        """Fail (and refund) the jobs whose lease lapsed; purge old results. Returns both counts."""
        now = utcnow()
        async with self.rt.sessionmaker() as session, session.begin():
            failed = await job_queries.interrupt_expired_jobs(session, now, INTERRUPTED.body()["error"])
        for job_id, token_id, refunded in failed:
            log.warning("job %s interrupted: its node stopped renewing its lease; %d micro-USD refunded "
                        "to %s", job_id, refunded, token_id)  # fmt: skip
            metrics.job_finished("interrupted")
        cutoff = now - timedelta(hours=self.settings.retention_hours)
        async with self.rt.sessionmaker() as session, session.begin():
            purged = await job_queries.purge_jobs(session, cutoff)
        return len(failed), purged

    async def stop(self, grace: float) -> None:
        """Let running jobs finish for up to `grace` seconds; interrupt the rest (recorded as such)."""
        jobs = list(self._jobs.values())
        if jobs and grace > 0:
            await asyncio.wait(jobs, timeout=grace)
        left = [task for task in jobs if not task.done()]
        for task in left:
            task.cancel()
        if left:
            log.warning("stopping: %d async job(s) interrupted", len(left))
            await asyncio.wait(left, timeout=10)
        self._stopping.set()  # the loops end after the write they are on, if any
        tasks = [*self._loops, *self._background]
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=10)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
