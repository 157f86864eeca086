"""What the OpenAPI document says about each public operation: bodies, answers, errors, auth.

One table for every route, because the hot routes (chat, images) have no FastAPI declaration to carry it
and the others read their JSON bodies themselves (for the size limit and the §2 error codes).
`openapi.py` turns it into path items; a test checks that every served route has its row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from gateway.api.schemas import responses as r
from gateway.api.schemas.admin import Token, TokenCreate, TokenDeleted, TokenList, TokenPatch, TokenWithKey
from gateway.api.schemas.chat import ChatCompletionRequest
from gateway.api.schemas.images import ImagesEditMultipart, ImagesEditRequest, ImagesGenerateRequest

Auth = Literal["client", "admin", "none"]


@dataclass(frozen=True)
class Op:
    operation_id: str
    summary: str
    tag: str
    auth: Auth
    ok: type[BaseModel] | None  # the JSON answer; None: see `ok_media`
    errors: tuple[int, ...]
    description: str = ""
    body: type[BaseModel] | None = None  # a JSON request body
    multipart: type[BaseModel] | None = None  # a multipart/form-data request body
    stream: str | None = None  # what `stream: true` answers with (text/event-stream)
    stream_event: type[BaseModel] | None = None
    ok_status: int = 200
    ok_media: tuple[str, ...] = field(default=("application/json",))
    ok_description: str = "OK"
    other: tuple[tuple[int, type[BaseModel]], ...] = ()  # answers other than the §2 error, by status


# Each error status, in the words of §2; a scope's own wording wins.
ERROR_TEXT: dict[tuple[Auth | None, int], str] = {
    (None, 400): "Malformed JSON, or a missing or invalid field (`param` names it); a bad image input "
    "(`invalid_image`, `invalid_image_url`); `image_url_not_available`; `content_policy_violation`.",
    (None, 401): "Missing, unknown, disabled or expired token (`invalid_api_key`).",
    (None, 403): "The body's `group` is not allowed for the token (`group_not_allowed`).",
    (None, 404): "The model is not served for the token's group or allow-list (`model_not_found`).",
    (None, 413): "The body or an image is over the size limits (`request_too_large`, `image_too_large`).",
    (None, 429): "Rate limit (`rate_limit_exceeded`, with `Retry-After`) or quota (`insufficient_quota`).",
    (None, 502): "Every upstream attempt failed, the upstream refused the gateway's credentials, or it "
    "answered with something that is not a valid answer (`upstream_error`).",
    (None, 503): "No channel can serve the request now (`no_available_channel`), or the model has no "
    "price (`model_price_not_set`).",
    (None, 504): "The upstream timed out or answered 504 itself (`upstream_timeout`).",
    ("admin", 400): "Malformed JSON, or a missing or invalid field (`param` names it).",
    ("admin", 401): "Missing or wrong admin token (`invalid_admin_token`).",
    ("admin", 404): "No token with this id (`token_not_found`).",
    ("admin", 413): "The body is over 1 MB (`request_too_large`).",
    ("admin", 503): "The admin API is off: no admin token is configured (`admin_api_disabled`).",
    ("none", 404): "No such file (`file_not_found`).",
    ("none", 503): "Not ready: the answer says which dependency failed.",
}

_HOT_ERRORS = (400, 401, 403, 404, 413, 429, 502, 503, 504)
_CHAT_STREAM = (
    "With `stream: true`: `data: <chat.completion.chunk JSON>` events, then `data: [DONE]`; `: keepalive` "
    "comments while waiting. A failure after the stream started is a `data:` event holding a §2 error "
    "object, and no `[DONE]`."
)
_IMAGES_STREAM = (
    "With `stream: true` (and `partial_images`, on channels that stream): the upstream's events "
    "(`image_generation.partial_image`, `image_generation.completed`, or `image_edit.*`) passed through; "
    "a failure after the stream started is an `event: error` holding a §2 error object."
)
_CHAT_TEXT = (
    "OpenAI's chat completions. Every field is forwarded (unknown ones too); the gateway's own `group` "
    "picks a token group. Image-capable models answer with images in `message.images` and as markdown in "
    "`content`."
)


def _chat(operation_id: str, summary: str) -> Op:
    return Op(
        operation_id,
        summary,
        "chat",
        "client",
        r.ChatCompletion,
        _HOT_ERRORS,
        _CHAT_TEXT,
        body=ChatCompletionRequest,
        stream=_CHAT_STREAM,
        stream_event=r.ChatCompletionChunk,
    )


def _models(operation_id: str, summary: str) -> Op:
    text = "Models the token may use: its group's and its allowed groups', within its allow-list."
    return Op(operation_id, summary, "models", "client", r.ModelList, (401,), text)


def _admin(
    operation_id: str,
    summary: str,
    ok: type[BaseModel],
    errors: tuple[int, ...],
    body: type[BaseModel] | None = None,
    ok_status: int = 200,
) -> Op:
    return Op(operation_id, summary, "admin", "admin", ok, errors, body=body, ok_status=ok_status)


OPS: dict[tuple[str, str], Op] = {
    ("post", "/v1/chat/completions"): _chat("createChatCompletion", "Create a chat completion"),
    ("post", "/v1beta/openai/chat/completions"): _chat(
        "createChatCompletionGeminiBase",
        "Create a chat completion (for clients set up with Gemini's OpenAI-compatible base URL)",
    ),
    ("post", "/v1/images/generations"): Op(
        "createImage",
        "Generate images",
        "images",
        "client",
        r.ImagesResponse,
        _HOT_ERRORS,
        "OpenAI's Images API. Every field is forwarded (unknown ones too); `response_format: url` returns "
        "URLs of re-hosted images, and fails with `image_url_not_available` when none can be produced.",
        body=ImagesGenerateRequest,
        stream=_IMAGES_STREAM,
    ),
    ("post", "/v1/images/edits"): Op(
        "createImageEdit",
        "Edit images",
        "images",
        "client",
        r.ImagesResponse,
        _HOT_ERRORS,
        "JSON (`images: [{image_url}]`, with https or data URLs) or multipart/form-data (`image`, `image[]`, "
        "`image[N]`, `mask`, and the other fields as form fields).",
        body=ImagesEditRequest,
        multipart=ImagesEditMultipart,
        stream=_IMAGES_STREAM,
    ),
    ("get", "/v1/models"): _models("listModels", "List models"),
    ("get", "/v1beta/openai/models"): _models(
        "listModelsGeminiBase", "List models (for Gemini's OpenAI-compatible base URL)"
    ),
    ("get", "/v1/me"): Op("getMe", "The calling token: quota and use", "account", "client", r.Me, (401,)),
    ("get", "/files/{key}"): Op(
        "getFile",
        "An image kept by the `local` storage backend",
        "files",
        "none",
        None,
        (404,),
        ok_media=("image/png", "image/jpeg", "image/webp", "image/gif", "application/octet-stream"),
        ok_description="The image file",
    ),
    ("get", "/healthz"): Op("healthz", "Liveness: the process answers", "health", "none", r.Health, ()),
    ("get", "/readyz"): Op(
        "readyz",
        "Readiness: the database and object storage answer",
        "health",
        "none",
        r.Readiness,
        (),
        other=((503, r.Readiness),),
    ),
    ("post", "/admin/tokens"): _admin(
        "createToken",
        "Create a token (its key is shown only in this answer)",
        TokenWithKey,
        (400, 401, 413, 503),
        body=TokenCreate,
        ok_status=201,
    ),
    ("get", "/admin/tokens"): _admin("listTokens", "List tokens", TokenList, (400, 401, 503)),
    ("get", "/admin/tokens/{token_id}"): _admin("getToken", "One token", Token, (401, 404, 503)),
    ("patch", "/admin/tokens/{token_id}"): _admin(
        "updateToken",
        "Change a token (any field but the key); `add_quota_usd` adds atomically",
        Token,
        (400, 401, 404, 413, 503),
        body=TokenPatch,
    ),
    ("delete", "/admin/tokens/{token_id}"): _admin(
        "deleteToken", "Revoke a token: its key stops working at once", TokenDeleted, (401, 404, 503)
    ),
    ("post", "/admin/tokens/{token_id}/rotate"): _admin(
        "rotateToken",
        "A new key for the token (shown only in this answer); the old key stops working at once",
        TokenWithKey,
        (401, 404, 503),
    ),
}
