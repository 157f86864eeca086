"""What the OpenAPI document says about each public operation: bodies, answers, errors, auth.

One table for every route, because the hot routes (chat, images) have no FastAPI declaration to carry it
and the others read their JSON bodies themselves (for the size limit and the §2 error codes).
`openapi.py` turns it into path items; a test checks that every served route has its row. This module
holds the client and public routes' rows; the admin API's are in `openapi_ops_admin.py`.
"""

from __future__ import annotations

from gateway.api.openapi_op import Op
from gateway.api.openapi_ops_admin import ADMIN_OPS
from gateway.api.schemas import responses as r
from gateway.api.schemas.chat import ChatCompletionRequest
from gateway.api.schemas.images import ImagesEditMultipart, ImagesEditRequest, ImagesGenerateRequest

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


_ME_TEXT = (
    "The token's quota, what it has used and what is left, in USD, read from its row now (not from the "
    "auth cache)."
)
_BILLING_TEXT = (
    "OpenAI's old dashboard endpoint, answered as one-api / new-api answer it, for clients (such as "
    "NextChat) that show a balance from it: `hard_limit_usd - total_usage / 100` is what is left. Served "
    "with and without `/v1`."
)
_IGNORED_DATE = "accepted and not read: the usage is the token's whole use, the line its quota is drawn from"


def _billing(base: str) -> dict[tuple[str, str], Op]:
    """The dashboard billing pair under `base` (`/v1/dashboard/billing`, or the same without `/v1`)."""
    tail = "" if base.startswith("/v1/") else "WithoutV1"
    return {
        ("get", f"{base}/subscription"): Op(
            f"getBillingSubscription{tail}",
            "The calling token's quota, as OpenAI's dashboard subscription",
            "account",
            "client",
            r.BillingSubscription,
            (401,),
            _BILLING_TEXT,
        ),
        ("get", f"{base}/usage"): Op(
            f"getBillingUsage{tail}",
            "What the calling token used, as OpenAI's dashboard usage (in cents)",
            "account",
            "client",
            r.BillingUsage,
            (401,),
            _BILLING_TEXT,
            ignored={"start_date": _IGNORED_DATE, "end_date": _IGNORED_DATE},
        ),
    }


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
    ("get", "/v1/me"): Op(
        "getMe", "The calling token: quota and use", "account", "client", r.Me, (401,), _ME_TEXT
    ),
    ("get", "/files/{key}"): Op(
        "getFile",
        "An image kept by the `local` storage backend",
        "files",
        "none",
        None,
        (404,),
        ok_media=("image/png", "image/jpeg", "image/webp", "image/gif", "application/octet-stream"),
        ok_description="The image file",
        params={"key": "the image's key, as in the URL the gateway returned"},
    ),
    ("get", "/v1/images/jobs/{job_id}"): Op(
        "getImageJob",
        "An async image job: its status, then its result or its error",
        "images",
        "client",
        r.ImageJob,
        (401, 404),
        "A generations or edits request sent with `Prefer: respond-async` answers 202 with the queued job at "
        "once. Any node answers this; another token's job is 404.",
        params={"job_id": "the `id` of the 202 answer"},
    ),
    ("get", "/metrics"): Op(
        "metrics",
        "Prometheus metrics",
        "health",
        "admin",
        None,
        (401,),
        "The admin token is required unless `metrics.public: true`.",
        ok_media=("text/plain",),
        ok_description="The Prometheus text exposition format",
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
    **_billing("/v1/dashboard/billing"),
    **_billing("/dashboard/billing"),
    **ADMIN_OPS,
}
