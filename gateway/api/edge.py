"""The outermost ASGI layer: request ids, the crash guard, and the fast lane for the hot routes.

- Every response carries `x-request-id` (the client's own, or a new one), and log lines carry it too.
- An unhandled exception becomes a §2-shaped 500, never a trace. A client that hangs up before its
  request is read is not one: that is a 499 (client closed request), logged without a traceback.
- The routes that carry the traffic (chat, images) go straight to their endpoints. Measured with
  `bench/`: the framework's middleware, routing and dependency layers cost more per request than the
  whole reference proxy does. Everything else (admin, models, files, health) goes through FastAPI.
- A hot route's answer leaves in as few writes as it can: its head with its first body bytes (`_HeadHeld`).
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.datastructures import State
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from gateway.api.errors import database_unavailable, error_response
from gateway.api.streaming import SSEResponse
from gateway.errors import GatewayError
from gateway.logs import request_id_var

log = logging.getLogger("gateway.api")

Endpoint = Callable[[Request], Awaitable[Response | SSEResponse]]
MAX_ID_LEN = 128
CLIENT_CLOSED = 499  # nginx's "client closed request": nobody is left to read the answer
_ID_PREFIX = "req_" + secrets.token_hex(6)  # per process, so ids stay unique across processes
_ID_COUNTER = itertools.count(1)
_CRASH = orjson.dumps(GatewayError("The server had an error while processing your request.").body())


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given: str = value.decode("latin-1")[:MAX_ID_LEN]
            if given:
                return given
    return f"{_ID_PREFIX}{next(_ID_COUNTER):010x}"


class Edge:
    def __init__(self, api: FastAPI, routes: dict[str, Endpoint]) -> None:
        self.api = api
        self.routes = routes
        # Caught inside the framework too, so that it answers 499 rather than its generic 500.
        api.add_exception_handler(ClientDisconnect, _client_closed)

    @property
    def state(self) -> State:
        return self.api.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handle(scope, receive, send, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send, server_send: Send) -> None:
        """`server_send`: the server's own `send`, under any wrapper of `send` (see `_HeadHeld`)."""
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        request_id = _request_id(scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        request_id_var.set(request_id)
        header = (b"x-request-id", request_id.encode("latin-1"))
        endpoint = self.routes.get(scope["path"]) if scope["method"] == "POST" else None
        if endpoint is not None:
            await self._hot(endpoint, scope, receive, send, header, server_send)
            return
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.api(scope, receive, send_with_id)
        except ClientDisconnect:
            _client_gone(scope)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _crash()(scope, receive, send_with_id)

    async def _hot(
        self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send, header: tuple[bytes, bytes],
        server_send: Send,
    ) -> None:  # fmt: skip
        """A hot route: the response object gets the request id itself, so `send` is not wrapped."""
        scope["app"] = self.api
        response: Response | SSEResponse
        try:
            response = await endpoint(Request(scope, receive, send))
        except GatewayError as exc:
            response = error_response(exc)
        except ClientDisconnect:
            _client_gone(scope)
            response = Response(status_code=CLIENT_CLOSED)
        except Exception as exc:
            outage = database_unavailable(exc)
            if outage is None:
                log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            response = _crash() if outage is None else error_response(outage)
        response.raw_headers.append(header)
        # The request is read (an `Expect: 100-continue` answered): from here, only the answer is written.
        cycle = getattr(server_send, "__self__", None)  # uvicorn's request cycle, which writes to `transport`
        transport = getattr(cycle, "transport", None)
        held = _HeadHeld(transport) if hasattr(transport, "write") else None
        if held is not None:
            cycle.transport = held  # type: ignore[union-attr]
        try:
            await response(scope, receive, send)
        except Exception:  # the answer has started: nothing left to tell the client
            log.exception("unhandled error while answering %s %s", scope.get("method"), scope.get("path"))
        finally:
            if held is not None:
                cycle.transport = transport  # type: ignore[union-attr]
                held.flush()


class _HeadHeld:
    """The client's transport, holding the answer's head until its first body bytes: the two go out in
    one write (one system call, one packet) instead of two, as uvicorn writes each ASGI message at once.
    Everything but `write` and `close` is the transport's own."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._first = True

    def write(self, data: bytes) -> None:
        if self._first:
            self._first = False
            self._head = data
            return
        if self._head is not None:
            data, self._head = self._head + data, None
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _client_gone(scope: Scope) -> None:
    log.info("client closed the connection before its request was read: %s %s", scope.get("method"),
             scope.get("path"))  # fmt: skip


async def _client_closed(request: Request, _: Exception) -> Response:
    _client_gone(request.scope)
    return Response(status_code=CLIENT_CLOSED)


def _crash() -> Response:
    return Response(_CRASH, status_code=500, media_type="application/json")
