"""The app as served: the edge, plus what the process does around every request.

- counts each answer in `gateway_requests_total{route, model, status}` (and the 429 refusals by kind);
- while draining (SIGTERM, see api/drain.py) refuses new requests with 503 `server_shutting_down`, and
  counts the requests in flight so that the drain knows when they are done.
Probes (`/healthz`, `/readyz`) and `/metrics` are answered while draining and are not waited for.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from gateway import metrics
from gateway.api.drain import Drain
from gateway.api.edge import Edge, Endpoint, _request_id
from gateway.errors import ServiceUnavailable
from gateway.routing.catalog import Catalog

PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
SHUTTING_DOWN = orjson.dumps(
    ServiceUnavailable(
        "This server is shutting down; send the request again (another server will take it).",
        code="server_shutting_down",
    ).body()
)
CLIENT_CLOSED = 499


class ServingEdge(Edge):
    def __init__(self, api: FastAPI, routes: dict[str, Endpoint], drain: Drain) -> None:
        super().__init__(api, routes)
        self.drain = drain
        self._models = metrics.ModelLabels()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        path: str = scope["path"]
        probe = path in PROBES
        if self.drain.draining and not probe:
            await _refuse(scope, send)
            metrics.count_request(self._route(scope), "", 503)
            return
        status = 0

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif status == 429 and message["type"] == "http.response.body":
                body = message.get("body", b"")
                metrics.rejected(
                    "insufficient_quota" if b'"insufficient_quota"' in body else "rate_limit_exceeded"
                )
                status = -429  # counted once
            await send(message)

        if not probe:
            self.drain.enter()
        try:
            await self.handle(scope, receive, observed, send)
        finally:
            if not probe:
                self.drain.leave()
            self._count(scope, abs(status) or CLIENT_CLOSED)

    def _count(self, scope: Scope, status: int) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        model = state.get("model")
        label = ""
        rt = getattr(self.api.state, "runtime", None)
        if model and rt is not None:
            catalog = rt.catalog
            label = self._models.label(str(model), catalog, lambda: _served_models(catalog))
        metrics.count_request(self._route(scope), label, status)

    def _route(self, scope: Scope) -> str:
        path: str = scope["path"]
        if path in self.routes:
            return path
        route = scope.get("route")
        template = getattr(route, "path", None)
        return template if isinstance(template, str) else metrics.OTHER


def _served_models(catalog: Catalog) -> list[str]:
    return [model for channel in catalog.channels() for model in channel.models]


async def _refuse(scope: Scope, send: Send) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(SHUTTING_DOWN)).encode()),
        (b"connection", b"close"),
        (b"retry-after", b"1"),
        (b"x-request-id", _request_id(scope).encode("latin-1")),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": SHUTTING_DOWN, "more_body": False})
