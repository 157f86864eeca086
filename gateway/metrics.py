"""Prometheus metrics (§8.4): the series, and the cheap calls that record them on the hot path.

With several worker processes (`gateway serve --workers N`) `PROMETHEUS_MULTIPROC_DIR` is set before
the workers start: prometheus-client then keeps every value in a file of that directory and `/metrics`
adds up the files of all workers (its multiprocess mode), whichever worker answers the scrape.
Label values stay bounded: routes are route templates, models only those the config serves ("other"
else), channels those of the config, outcomes and reasons short fixed lists.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"
_CACHE_LIMIT = 10_000  # label children kept for the fast path; past it they are looked up each time

REQUESTS = Counter(
    "gateway_requests",
    "HTTP requests answered, by route, model and HTTP status.",
    ["route", "model", "status"],
)
UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_latency_seconds",
    "Duration of each upstream attempt, by channel and outcome.",
    ["channel", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300),
)
ATTEMPTS = Counter(
    "gateway_upstream_attempts",
    "Upstream attempts, by channel and outcome (success, 429, 4xx, 5xx, timeout, error).",
    ["channel", "outcome"],
)
FAILOVERS = Counter(
    "gateway_failovers", "Requests moved on to another channel or key after a failed attempt.", ["channel"]
)
IMAGES_REHOSTED = Counter(
    "gateway_images_rehosted", "Images stored in object storage, by origin (upstream, client).", ["origin"]
)
IMAGES_REHOSTED_BYTES = Counter(
    "gateway_images_rehosted_bytes", "Bytes of the images stored in object storage.", ["origin"]
)
QUOTA_REJECTIONS = Counter("gateway_quota_rejections", "Requests refused with 429 insufficient_quota.")
RATE_LIMIT_REJECTIONS = Counter(
    "gateway_rate_limit_rejections", "Requests refused with 429 rate_limit_exceeded (rpm or concurrency)."
)
USAGE_QUEUE_DEPTH = Gauge(
    "gateway_usage_queue_depth",
    "Usage records waiting to be written to the database.",
    multiprocess_mode="livesum",  # the sum over the worker processes that are alive
)
IMAGE_JOBS = Counter(
    "gateway_image_jobs", "Async image jobs finished, by status (succeeded, failed, interrupted).", ["status"]
)

_children: dict[tuple[object, ...], Any] = {}


def _child(metric: Counter | Histogram, *labels: object) -> Any:
    """A labelled child, kept after its first use: `labels()` takes a lock and builds a key each call."""
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = metric.labels(*labels)
        if len(_children) < _CACHE_LIMIT:
            _children[key] = child
    return child


def count_request(route: str, model: str, status: int) -> None:
    _child(REQUESTS, route, model, status).inc()  # labels() makes it a str


def outcome(upstream_status: int | None, code: str | None) -> str:
    """A failed attempt's label: a handful of values, whatever the upstream sent."""
    if upstream_status is None:
        return "timeout" if code == "upstream_timeout" else "error"
    if upstream_status == 429:
        return "429"
    if 400 <= upstream_status < 500:
        return "4xx"
    if upstream_status >= 500:
        return "5xx"
    return "error"


def attempt(channel: str, result: str, seconds: float) -> None:
    _child(ATTEMPTS, channel, result).inc()
    _child(UPSTREAM_LATENCY, channel, result).observe(seconds)


def failover(channel: str) -> None:
    FAILOVERS.labels(channel).inc()


def image_rehosted(origin: str, size: int) -> None:
    IMAGES_REHOSTED.labels(origin).inc()
    IMAGES_REHOSTED_BYTES.labels(origin).inc(size)


def rejected(code: str | None) -> None:
    if code == "insufficient_quota":
        QUOTA_REJECTIONS.inc()
    elif code == "rate_limit_exceeded":
        RATE_LIMIT_REJECTIONS.inc()


def job_finished(status: str) -> None:
    IMAGE_JOBS.labels(status).inc()


class ModelLabels:
    """Model label values: a model the config serves, else "other" (a client can send any name)."""

    def __init__(self) -> None:
        self._source: object = None
        self._known: frozenset[str] = frozenset()

    def label(self, model: str | None, source: object, models: Callable[[], Iterable[str]]) -> str:
        if not model:
            return ""
        if source is not self._source:  # a reload built a new catalog: recompute once
            self._known, self._source = frozenset(models()), source
        return model if model in self._known else OTHER


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def exposition() -> bytes:
    """The text exposition: summed over every worker's files in multiprocess mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def prepare_multiprocess_dir() -> Path | None:
    """Before uvicorn starts several workers: a clean directory for their metric files.

    An operator's `PROMETHEUS_MULTIPROC_DIR` is used (its old files removed: counters restart with the
    processes); else a fresh temporary directory, which the caller removes when the server stops.
    Returns the directory it created, if any.
    """
    given = multiprocess_dir()
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink(missing_ok=True)
        return None
    created = Path(tempfile.mkdtemp(prefix="gateway-metrics-"))
    os.environ[MULTIPROC_ENV] = str(created)
    return created


def remove_dir(path: Path | None) -> None:
    """Remove the directory `prepare_multiprocess_dir` created, and the setting that points at it."""
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
        if os.environ.get(MULTIPROC_ENV) == str(path):
            del os.environ[MULTIPROC_ENV]


def process_exiting() -> None:
    """A worker stops: its live gauges no longer count (multiprocess mode)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


async def sample_forever(read: Callable[[], int], gauge: Gauge, interval: float = 1.0) -> None:
    """Keep a gauge that another worker may be asked for up to date (multiprocess mode)."""
    while True:
        gauge.set(read())
        await asyncio.sleep(interval)
