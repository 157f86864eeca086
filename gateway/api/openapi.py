"""The OpenAPI 3.1 document (`GET /openapi.json`) and its browsable page (`GET /docs`), open to all.

FastAPI documents the routes it serves (paths, path and query parameters). The hot routes bypass its
router (see edge.py), so their path items are added here; every operation then gets its bodies, answers,
errors, auth and parameter descriptions from the table in `openapi_ops.py`, with schemas generated from
the pydantic models that validate the requests (and document the answers). The document is built on
first use and kept, as JSON bytes, for the process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.responses import HTMLResponse, Response

from gateway.api import openapi_page
from gateway.api.openapi_op import Auth, Op, error_text
from gateway.api.openapi_ops import OPS
from gateway.api.schemas.responses import ErrorResponse

DESCRIPTION = """\
An OpenAI-compatible gateway for image generation and editing, and the chat traffic around it. Point an
OpenAI SDK at `<this server>/v1` with a gateway token as the API key.

Every error answer has OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, and every answer
carries `x-request-id` (the client's own, when it sent one). `stream: true` answers `text/event-stream`.
"""
TAGS = [
    {"name": "chat", "description": "Chat completions; image-capable models answer with images"},
    {"name": "images", "description": "OpenAI's Images API"},
    {"name": "models"},
    {"name": "account"},
    {"name": "files"},
    {"name": "health"},
    {"name": "admin", "description": "Tokens, usage, channels and reload, behind the admin token"},
]
_TOKEN_TEXT = (
    "A gateway token. Also accepted: a bare `Authorization: <token>`, `x-api-key`, `x-goog-api-key`, `?key=`."
)
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": _TOKEN_TEXT},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "googApiKeyHeader": {"type": "apiKey", "in": "header", "name": "x-goog-api-key"},
    "keyQuery": {"type": "apiKey", "in": "query", "name": "key"},
    "adminBearer": {"type": "http", "scheme": "bearer", "description": "GATEWAY_ADMIN_TOKEN"},
}
SECURITY: dict[Auth, list[dict[str, list[str]]]] = {
    "client": [{"bearerAuth": []}, {"apiKeyHeader": []}, {"googApiKeyHeader": []}, {"keyQuery": []}],
    "admin": [{"adminBearer": []}],
    "none": [],
}
_REF = "#/components/schemas/{model}"
Refs = dict[Any, str]  # model -> its "$ref"
_REQUEST_ID = {"x-request-id": {"$ref": "#/components/headers/RequestId"}}
_PARAMETERS = {
    "RequestId": {
        "name": "x-request-id",
        "in": "header",
        "required": False,
        "description": "Your own id for the request, echoed in the answer and kept on the usage record "
        "(cut to 128 characters); without it the gateway makes one.",
        "schema": {"type": "string"},
    }
}
_HEADERS = {
    "RequestId": {
        "description": "The request's id: the client's own `x-request-id`, or a new one.",
        "required": True,
        "schema": {"type": "string"},
    },
    "RetryAfter": {"description": "Seconds to wait (rate limits).", "schema": {"type": "string"}},
}
_AUTH_ERRORS: dict[Auth, tuple[int, ...]] = {"client": (401,), "admin": (401, 503), "none": ()}
_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")  # its 422 answers, which we render as 400


def build(app: FastAPI, hot_paths: Iterable[str]) -> dict[str, Any]:
    """The whole document: FastAPI's path items, the hot routes' own, and the table's details on each."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=DESCRIPTION,
        routes=app.routes,
        tags=TAGS,
    )
    served: dict[str, dict[str, Any]] = doc.get("paths", {})
    for path in hot_paths:
        served.setdefault(path, {})["post"] = {}
    # The table's order (chat and images first), then anything it does not know.
    order = list(dict.fromkeys(path for _, path in OPS))
    paths = {p: served[p] for p in order if p in served} | served
    doc["paths"] = paths
    schemas, refs = _component_schemas()
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        if name not in _FASTAPI_ONLY:
            schemas.setdefault(name, schema)
    for path, item in paths.items():
        for method, operation in item.items():
            _describe(operation, OPS.get((method, path)), path, refs)
    doc["components"] = {
        "schemas": schemas,
        "securitySchemes": SECURITY_SCHEMES,
        "parameters": _PARAMETERS,
        "headers": _HEADERS,
    }
    return doc


def _component_schemas() -> tuple[dict[str, Any], Refs]:
    """JSON schemas of every model in the table: request models as validated, answers as sent."""
    requests = {m for op in OPS.values() for m in (op.body, op.multipart) if m is not None}
    answers = {m for op in OPS.values() for m in (op.ok, op.stream_event) if m is not None} | {ErrorResponse}
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((m, "validation") for m in sorted(requests, key=lambda m: m.__name__)),
        *((m, "serialization") for m in sorted(answers, key=lambda m: m.__name__)),
    ]
    keys, top = models_json_schema(modes, ref_template=_REF)
    refs: Refs = {model: ref["$ref"] for (model, _), ref in keys.items()}
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    for op in OPS.values():
        if op.multipart is not None:  # form fields cannot be null: offer each field's non-null choice
            form = schemas[refs[op.multipart].rsplit("/", 1)[1]]
            form["properties"] = {k: _not_null(v) for k, v in form["properties"].items()}
    return schemas, refs


def _ref(refs: Refs, model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": refs[model]}


def _describe(operation: dict[str, Any], op: Op | None, path: str, refs: Refs) -> None:
    """Fill one operation in place from its row of the table."""
    _parameters(operation, op)
    if op is None:
        # A route the table does not know (a test requires a row for each): what FastAPI says of it,
        # with auth and errors by its path.
        auth: Auth = "admin" if path.startswith("/admin") else "client" if path.startswith("/v1") else "none"
        responses: dict[str, Any] = operation.get("responses", {})
        responses.pop("422", None)
        responses |= {str(status): _error(op, auth, status, refs) for status in _AUTH_ERRORS[auth]}
    else:
        auth = op.auth
        operation.update(operationId=op.operation_id, summary=op.summary, tags=[op.tag])
        if op.description:
            operation["description"] = op.description
        if op.body or op.multipart:
            operation["requestBody"] = _request_body(op, refs)
        responses = {str(op.ok_status): _ok(op, refs)}
        responses |= {str(status): _error(op, auth, status, refs) for status in op.errors}
        responses |= {str(status): _error(op, auth, status, refs, model) for status, model in op.other}
    for answer in responses.values():
        answer.setdefault("headers", {}).update(_REQUEST_ID)
    if "429" in responses:
        responses["429"]["headers"]["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
    operation["responses"] = responses
    if SECURITY[auth]:
        operation["security"] = SECURITY[auth]


def _parameters(operation: dict[str, Any], op: Op | None) -> None:
    """The route's own parameters with the table's descriptions, the ones it ignores, and x-request-id."""
    parameters: list[dict[str, Any]] = operation.setdefault("parameters", [])
    described = dict(op.params) if op is not None else {}
    for parameter in parameters:
        parameter["schema"] = _not_null(parameter.get("schema", {}))
        text = described.pop(parameter["name"], None)
        if text is not None:
            parameter["description"] = text
    if described:  # a description of nothing: the table and the route disagree
        raise ValueError(f"{op.operation_id if op else '?'}: no parameter {sorted(described)}")
    for name, text in (op.ignored if op is not None else {}).items():
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": text,
                "schema": {"type": "string"},
            }
        )
    parameters.append({"$ref": "#/components/parameters/RequestId"})


def _request_body(op: Op, refs: Refs) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if op.body is not None:
        content["application/json"] = {"schema": _ref(refs, op.body)}
    if op.multipart is not None:
        content["multipart/form-data"] = {
            "schema": _ref(refs, op.multipart),
            "encoding": {
                "image": {"contentType": "image/png, image/jpeg, image/webp, image/gif"},
                "mask": {"contentType": "image/png"},
            },
        }
    return {"required": True, "content": content}


def _ok(op: Op, refs: Refs) -> dict[str, Any]:
    if op.ok is not None:
        content: dict[str, Any] = {"application/json": {"schema": _ref(refs, op.ok)}}
    else:
        content = {}
    for media in op.ok_media:  # the other media types: text, or binary (an image file)
        if media not in content:
            text = media.startswith("text/")
            content[media] = {
                "schema": {"type": "string"} if text else {"type": "string", "format": "binary"}
            }
    if op.stream is not None:
        content["text/event-stream"] = {"schema": _event_schema(op, refs)}
    return {"description": op.ok_description, "content": content}


def _event_schema(op: Op, refs: Refs) -> dict[str, Any]:
    """One server-sent event, as OpenAPI 3.1 describes a stream: its `data` is `[DONE]` or JSON (an
    event of the stream, or a §2 error object)."""
    payload = _ref(refs, op.stream_event) if op.stream_event is not None else {"type": "object"}
    json_data = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"anyOf": [payload, _ref(refs, ErrorResponse)]},
    }
    return {
        "type": "object",
        "description": op.stream,
        "required": ["data"],
        "properties": {
            "event": {"type": "string"},
            "data": {"anyOf": [{"const": "[DONE]"}, json_data]},
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
    }


def _error(
    op: Op | None, auth: Auth, status: int, refs: Refs, model: type[BaseModel] = ErrorResponse
) -> dict[str, Any]:
    text = error_text(op, auth, status)
    return {"description": text, "content": {"application/json": {"schema": _ref(refs, model)}}}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter or form field is never JSON null: drop the `{"type": "null"}` choice of optional ones."""
    choices = schema.get("anyOf")
    if not isinstance(choices, list):
        return schema
    kept = [c for c in choices if c != {"type": "null"}]
    rest = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**rest, **kept[0]} if len(kept) == 1 else {**rest, "anyOf": kept}


class OpenAPIDocument:
    """Built on first request, then served from memory: the document as JSON bytes, and the page."""

    def __init__(self, app: FastAPI, hot_paths: Iterable[str]) -> None:
        self._app = app
        self._hot_paths = tuple(hot_paths)
        self._doc: dict[str, Any] | None = None
        self._json: bytes | None = None
        self._page: bytes | None = None

    def document(self) -> dict[str, Any]:
        if self._doc is None:
            self._doc = build(self._app, self._hot_paths)
        return self._doc

    async def json_endpoint(self) -> Response:
        if self._json is None:
            self._json = orjson.dumps(self.document())
        return Response(self._json, media_type="application/json")

    async def docs_endpoint(self) -> Response:
        if self._page is None:
            self._page = openapi_page.render(self.document(), "openapi.json").encode()
        return HTMLResponse(self._page)


def install(app: FastAPI, hot_paths: Iterable[str]) -> None:
    """Serve `/openapi.json` and `/docs` (neither needs a token); `app.openapi()` is the full document."""
    document = OpenAPIDocument(app, hot_paths)
    app.openapi = document.document  # type: ignore[method-assign]
    app.add_api_route("/openapi.json", document.json_endpoint, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", document.docs_endpoint, methods=["GET"], include_in_schema=False)
