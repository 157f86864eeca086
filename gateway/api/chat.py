"""POST /v1/chat/completions (and the same handler at /v1beta/openai/chat/completions)."""

from __future__ import annotations

from collections.abc import Awaitable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway import logs
from gateway.api.answers import JSONBytes
from gateway.api.deps import authenticate, read_json, request_id, runtime_of, until_disconnect, validate
from gateway.api.keepalive import KeepaliveResponse, interval
from gateway.api.schemas.chat import ChatCompletionRequest, plain_request
from gateway.api.streaming import SSEResponse
from gateway.domain import JSONObject
from gateway.pipeline import chat as pipeline
from gateway.pipeline.chat import ChatRequest

CLIENT_CLOSED = 499


async def chat_completions(request: Request) -> Response | SSEResponse:
    rt = runtime_of(request)
    caller = await authenticate(request, rt)
    body = await read_json(request, rt.settings.limits.max_request_body_bytes)
    plain = plain_request(body)
    if plain is None:
        parsed = validate(ChatCompletionRequest, body)
        options = parsed.stream_options
        include_usage = bool(options and options.include_usage)
        plain = parsed.model, parsed.group, bool(parsed.stream), include_usage
    model, group, stream, include_usage = plain
    logs.request_body(rt.settings.logging, body)
    request.scope["state"]["model"] = model  # the metrics label
    body.pop("group", None)
    req = ChatRequest(body=body, model=model, group=group, stream=stream, include_usage=include_usage)
    rid = request_id(request)
    endpoint = request.scope["path"]
    if req.stream:
        events = await pipeline.stream(rt, caller, req, request_id=rid, endpoint=endpoint)
        return SSEResponse(events, rt.settings.server.sse_keepalive_seconds)
    work = pipeline.complete(rt, caller, req, request_id=rid, endpoint=endpoint)
    seconds = interval(request, rt.settings.server)
    if seconds > 0:
        return KeepaliveResponse(_answer(work), seconds)
    result = await until_disconnect(request, work)
    if result is None:
        return Response(status_code=CLIENT_CLOSED)
    return JSONBytes(orjson.dumps(result))


async def _answer(work: Awaitable[JSONObject]) -> Response:
    return JSONBytes(orjson.dumps(await work))


ROUTES = {"/v1/chat/completions": chat_completions, "/v1beta/openai/chat/completions": chat_completions}
