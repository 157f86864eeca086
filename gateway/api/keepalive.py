"""Long non-stream calls (§4.7): 200 and the headers once the first interval passes, then a space
every interval until the JSON body, so that proxies and clients with read timeouts keep the call.

A call that ends within the first interval is answered as usual: plain JSON, its real status, no
padding. After the 200 has gone out an error can only travel in the body: the §2 error object (after
the spaces), with status 200. Headers the answer would have carried (`x-gateway-warning`) are lost once
the status line is out. Leading whitespace is valid JSON for every client targeted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway import metrics
from gateway.api.errors import error_response
from gateway.api.streaming import WATCH_AFTER_SECONDS, DisconnectWatch
from gateway.errors import GatewayError
from gateway.settings import ServerSettings

log = logging.getLogger("gateway.api")

HEADER = "x-gateway-keepalive"
DEFAULT_INTERVAL = 10.0
MAX_INTERVAL = 300.0  # a client's interval, capped (a huge one would only mean "no keepalive")
PAD = b" "


def interval(request: Request, server: ServerSettings) -> float:
    """The header's interval (above 1: seconds; 1: the configured one, else 10 s; 0: off), else config."""
    value = request.headers.get(HEADER)
    if value is not None:
        try:
            asked = float(value)
        except ValueError:
            asked = -1.0
        if asked > 1:
            return min(asked, MAX_INTERVAL)
        if asked == 1:
            return server.nonstream_keepalive_seconds or DEFAULT_INTERVAL
        if asked == 0:
            return 0.0
    return server.nonstream_keepalive_seconds


class KeepaliveResponse(Response):
    """Answers with what `work` makes, keeping the connection busy while it runs.

    `work` builds the answer (a Response) or raises a GatewayError. A client that disconnects cancels it.
    """

    def __init__(self, work: Coroutine[Any, Any, Response], interval_seconds: float) -> None:
        # No Response.__init__: nothing is rendered before the work is done.
        self.work = work
        self.interval = interval_seconds
        self.status_code = 200
        self.background = None
        self.raw_headers: list[tuple[bytes, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.ensure_future(self.work)
        started = False
        try:
            with DisconnectWatch(receive, WATCH_AFTER_SECONDS) as watch:
                while True:
                    await asyncio.wait((task,), timeout=self.interval)
                    if task.done():
                        break
                    if not started:
                        started = True
                        headers = [(b"content-type", b"application/json"), *self.raw_headers]
                        await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body", "body": PAD, "more_body": True})
        finally:
            if not task.done():
                task.cancel()  # the client went away (or this request is being cut): stop the call
        if watch.disconnected:
            return
        answer = _outcome(task, started)
        if started:
            await send({"type": "http.response.body", "body": answer.body, "more_body": False})
            return
        answer.raw_headers += [h for h in self.raw_headers if h[0] == b"x-request-id"]
        self.status_code = answer.status_code
        await answer(scope, receive, send)


def _outcome(task: asyncio.Future[Response], started: bool) -> Response:
    exc = task.exception()
    if exc is None:
        return task.result()
    if isinstance(exc, GatewayError):
        if started:  # the edge only sees the 200: count the refusal here
            metrics.rejected(exc.code)
        return error_response(exc)
    log.error("unhandled error in a non-stream call", exc_info=exc)
    return error_response(GatewayError("The server had an error while processing your request."))
