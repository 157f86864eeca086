"""POST /v1/chat/completions (and the same handler at /v1beta/openai/chat/completions)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.deps import authenticate, read_json, request_id, runtime_of, until_disconnect, validate
from gateway.api.schemas.chat import ChatCompletionRequest
from gateway.api.streaming import SSEResponse
from gateway.pipeline import chat as pipeline
from gateway.pipeline.chat import ChatRequest

CLIENT_CLOSED = 499


async def chat_completions(request: Request) -> Response | SSEResponse:
    rt = runtime_of(request)
    caller = await authenticate(request, rt)
    body = await read_json(request, rt.settings.limits.max_request_body_bytes)
    parsed = validate(ChatCompletionRequest, body)
    body.pop("group", None)
    req = ChatRequest(
        body=body,
        model=parsed.model,
        group=parsed.group,
        stream=bool(parsed.stream),
        include_usage=bool(parsed.stream_options and parsed.stream_options.include_usage),
    )
    rid = request_id(request)
    endpoint = request.scope["path"]
    if req.stream:
        events = await pipeline.stream(rt, caller, req, request_id=rid, endpoint=endpoint)
        return SSEResponse(events, rt.settings.server.sse_keepalive_seconds)
    result = await until_disconnect(
        request, pipeline.complete(rt, caller, req, request_id=rid, endpoint=endpoint)
    )
    if result is None:
        return Response(status_code=CLIENT_CLOSED)
    return Response(orjson.dumps(result), media_type="application/json")


ROUTES = {"/v1/chat/completions": chat_completions, "/v1beta/openai/chat/completions": chat_completions}
