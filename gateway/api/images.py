"""POST /v1/images/generations and /v1/images/edits (JSON with `images[].image_url`, or multipart)."""

from __future__ import annotations

import re
from collections.abc import Awaitable

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway import logs
from gateway.api import jobs
from gateway.api.deps import (
    authenticate,
    read_body,
    read_json,
    request_id,
    runtime_of,
    until_disconnect,
    validate,
)
from gateway.api.keepalive import KeepaliveResponse, interval
from gateway.api.schemas.images import ImagesEditForm, ImagesEditRequest, ImagesGenerateRequest
from gateway.api.streaming import SSEResponse
from gateway.domain import Caller, ImagePart, JSONObject, Operation, answer_json, answer_json_parts
from gateway.errors import InvalidRequest
from gateway.images.inputs import check_reference, decode_data_url
from gateway.images.sniff import require_image
from gateway.pipeline import images as pipeline
from gateway.pipeline.images import ImageRequest, ImageResult
from gateway.runtime import Runtime

CLIENT_CLOSED = 499
# ASCII digits only: `\d` and str.isdigit() also take '²' or '٣', which int() then refuses or misreads.
_IMAGE_FIELD = re.compile(r"image(\[[0-9]{0,3}\])?")
_FORM_INT = re.compile(r"-?[0-9]{1,9}")
_FORM_INTS = ("n", "output_compression", "partial_images")
MAX_FILES, MAX_FIELDS = 64, 256


async def generations(request: Request) -> Response | SSEResponse:
    rt = runtime_of(request)
    caller = await authenticate(request, rt)
    body = await read_json(request, rt.settings.limits.max_request_body_bytes)
    parsed = validate(ImagesGenerateRequest, body)
    return await _run(request, rt, caller, _image_request("images.generate", body, parsed))


async def edits(request: Request) -> Response | SSEResponse:
    rt = runtime_of(request)
    caller = await authenticate(request, rt)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        req = await _multipart_edit(request, rt)
    else:
        body = await read_json(request, rt.settings.limits.max_request_body_bytes)
        parsed = validate(ImagesEditRequest, body)
        for n, ref in enumerate(parsed.images):
            _check_json_image(ref.image_url, ref.file_id, f"images[{n}].image_url")
        if parsed.mask is not None:
            _check_json_image(parsed.mask.image_url, parsed.mask.file_id, "mask.image_url")
        req = _image_request("images.edit", body, parsed)
    return await _run(request, rt, caller, req)


def _check_json_image(url: str | None, file_id: str | None, what: str) -> None:
    """Refuse bad input before any upstream call: a data URL must hold an image."""
    if file_id and not url:
        return
    check_reference(url, what)
    if url is not None and url[:5].lower() == "data:":
        decode_data_url(url, what)


def _image_request(operation: Operation, body: JSONObject, parsed: ImagesGenerateRequest) -> ImageRequest:
    body.pop("group", None)
    return ImageRequest(
        operation=operation,
        body=body,
        model=parsed.model,
        group=parsed.group,
        response_format=parsed.response_format,
        stream=bool(parsed.stream),
    )


async def _multipart_edit(request: Request, rt: Runtime) -> ImageRequest:
    # The body is read under the size limit first; the form parser then works from memory.
    request._body = await read_body(request, rt.settings.limits.max_request_body_bytes)
    form = await _form(request)
    try:
        fields: JSONObject = {}
        images: list[tuple[str, UploadFile]] = []
        mask: UploadFile | None = None
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name == "mask":
                    mask = value
                elif _IMAGE_FIELD.fullmatch(name):
                    images.append((name, value))
                else:
                    raise InvalidRequest(f"Unexpected file field '{name}'.", param=name)
            elif name in fields:  # a scalar field twice: which one was meant cannot be told
                raise InvalidRequest(f"The field '{name}' was sent more than once.", param=name)
            else:
                fields[name] = int(value) if name in _FORM_INTS and _FORM_INT.fullmatch(value) else value
        if not images:
            raise InvalidRequest("An edit needs at least one image file.", code="missing_required_parameter",
                                 param="image")  # fmt: skip
        parts = [await _part("image" if len(images) == 1 else "image[]", f, name) for name, f in images]
        if mask is not None:
            parts.append(await _part("mask", mask, "mask"))
    finally:
        await form.close()
    parsed = validate(ImagesEditForm, fields)
    fields.pop("group", None)
    return ImageRequest(
        operation="images.edit",
        body=fields,
        model=parsed.model,
        group=parsed.group,
        response_format=parsed.response_format,
        stream=bool(parsed.stream),
        files=tuple(parts),
        multipart=True,
    )


async def _form(request: Request) -> FormData:
    """The parsed form; a body the parser refuses is a 400 that says why."""
    try:
        return await request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS)
    except (MultiPartException, HTTPException) as exc:
        reason = exc.message if isinstance(exc, MultiPartException) else str(exc.detail)
    param = None
    if reason.startswith("Missing boundary"):
        reason = "the Content-Type header has no boundary (multipart/form-data; boundary=...)"
    elif reason.startswith("Too many files"):
        reason, param = f"an edit takes at most {MAX_FILES} files", "image"
    elif reason.startswith("Too many fields"):
        reason = f"an edit takes at most {MAX_FIELDS} fields"
    raise InvalidRequest(f"Invalid multipart body: {reason}", code="invalid_multipart", param=param)


async def _part(field: str, upload: UploadFile, what: str) -> ImagePart:
    data = await upload.read()
    info = require_image(data, what)
    stem = (upload.filename or field).rsplit(".", 1)[0] or "image"
    return ImagePart(field, f"{stem}.{info.ext}", data, info.mime)


async def _run(request: Request, rt: Runtime, caller: Caller, req: ImageRequest) -> Response | SSEResponse:
    rid, endpoint = request_id(request), request.scope["path"]
    request.scope["state"]["model"] = req.model  # the metrics label
    logs.request_body(rt.settings.logging, req.body)
    if not req.stream and jobs.wants_async(request):
        return await jobs.accept(request, rt, caller, req)
    if req.stream:
        events = await until_disconnect(
            request, pipeline.stream(rt, caller, req, request_id=rid, endpoint=endpoint)
        )
        if events is None:
            return Response(status_code=CLIENT_CLOSED)
        return SSEResponse(
            events, rt.settings.server.sse_keepalive_seconds, error_prefix=b"event: error\ndata: "
        )
    work = pipeline.generate(rt, caller, req, request_id=rid, endpoint=endpoint)
    seconds = interval(request, rt.settings.server)
    if seconds > 0:
        return KeepaliveResponse(_answer(work), seconds)
    result = await until_disconnect(request, work)
    if result is None:
        return Response(status_code=CLIENT_CLOSED)
    return _response(result)


async def _answer(work: Awaitable[ImageResult]) -> Response:
    result = await work
    return Response(answer_json(result.body), media_type="application/json", headers=_headers(result))


def _response(result: ImageResult) -> Response:
    return PartsResponse(answer_json_parts(result.body), headers=_headers(result))


def _headers(result: ImageResult) -> dict[str, str] | None:
    return {"x-gateway-warning": "; ".join(result.warnings)} if result.warnings else None


class PartsResponse(Response):
    """A JSON answer sent in the pieces `answer_json_parts` made: the base64 of an image passed
    through goes out from the upstream's buffer, without being copied into one answer first (§5.4)."""

    media_type = "application/json"

    def __init__(self, parts: list[bytes | memoryview], headers: dict[str, str] | None = None) -> None:
        super().__init__(None, headers=headers)
        self.parts = parts
        self.headers["content-length"] = str(sum(len(part) for part in parts))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        last = len(self.parts) - 1
        for n, part in enumerate(self.parts):
            await send({"type": "http.response.body", "body": part, "more_body": n < last})


ROUTES = {"/v1/images/generations": generations, "/v1/images/edits": edits}
