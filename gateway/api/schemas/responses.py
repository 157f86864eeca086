"""Answer shapes for the OpenAPI document: OpenAI's chat and images answers and the gateway's own.

Documentation only: the handlers build these bodies as plain data (the hot path serializes with orjson),
and the fuzz test checks live answers against the schemas generated from these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    """Upstreams add fields of their own; the gateway passes them through."""

    model_config = ConfigDict(extra="allow")


class ErrorObject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str
    type: str = Field(description="e.g. invalid_request_error, upstream_error, server_error")
    param: str | None = Field(description="the offending request field, if any")
    code: str | None = Field(description="e.g. invalid_api_key, model_not_found, upstream_timeout")


class ErrorResponse(BaseModel):
    """Every error answer (§2): `{"error": {"message", "type", "param", "code"}}`."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorObject


class ImageURL(_Open):
    url: str


class ChatImage(_Open):
    type: str = Field(description='"image_url"')
    image_url: ImageURL


class ChatCompletionMessage(_Open):
    role: str
    content: str | None = None
    images: list[ChatImage] | None = Field(None, description="images of the answer (OpenRouter's shape)")
    image: Any = Field(None, description="compatibility field, per the token's chat_image_field")
    reasoning_content: str | None = None
    refusal: str | None = None


class ChatCompletionChoice(_Open):
    index: int
    message: ChatCompletionMessage
    finish_reason: str | None = None


class CompletionUsage(_Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict[str, Any] | None = None
    completion_tokens_details: dict[str, Any] | None = None


class ChatCompletion(_Open):
    """A non-stream chat answer (OpenAI's `chat.completion`)."""

    id: str
    object: str = Field(description='"chat.completion"')
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: CompletionUsage | None = None


class ChatCompletionDelta(_Open):
    role: str | None = None
    content: str | None = None
    images: list[ChatImage] | None = None


class ChatCompletionChunkChoice(_Open):
    index: int
    delta: ChatCompletionDelta
    finish_reason: str | None = None


class ChatCompletionChunk(_Open):
    """One `data:` event of a chat stream (OpenAI's `chat.completion.chunk`); the stream ends with
    `data: [DONE]`, or with an error event in the §2 shape."""

    id: str
    object: str = Field(description='"chat.completion.chunk"')
    created: int
    model: str
    choices: list[ChatCompletionChunkChoice]
    usage: CompletionUsage | None = None


class ImageData(_Open):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesUsage(_Open):
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    input_tokens_details: dict[str, Any] | None = None
    output_tokens_details: dict[str, Any] | None = None


class ImagesResponse(_Open):
    """OpenAI's Images API answer: one entry of `data` per image, `url` or `b64_json` (§4.3)."""

    created: int
    data: list[ImageData]
    background: str | None = None
    output_format: str | None = None
    quality: str | None = None
    size: str | None = None
    usage: ImagesUsage | None = None


class ImageJob(BaseModel):
    """An async image job (§4.6): queued, running, then succeeded with `result` or failed with `error`."""

    id: str
    object: Literal["image.job"]
    status: Literal["queued", "running", "succeeded", "failed"]
    created: int
    completed_at: int | None = None
    result: ImagesResponse | None = None
    error: ErrorObject | None = None


class Model(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[Model]


class Me(BaseModel):
    """The calling token (§6.5)."""

    name: str
    group: str
    quota_usd: float | None = Field(description="null: unlimited")
    used_usd: float
    remaining_usd: float | None
    expires_at: str | None = Field(description="ISO 8601, or null: never")


class BillingSubscription(BaseModel):
    """OpenAI's old dashboard endpoint, as one-api / new-api answer it (clients such as NextChat read it)."""

    object: Literal["billing_subscription"]
    has_payment_method: bool
    soft_limit_usd: float = Field(description="the token's quota; 100000000 when unlimited")
    hard_limit_usd: float = Field(description="the token's quota; 100000000 when unlimited")
    system_hard_limit_usd: float = Field(description="the token's quota; 100000000 when unlimited")
    access_until: int = Field(description="Unix seconds when the token expires; 0: never")


class BillingUsage(BaseModel):
    """What the token used, in cents of USD: `hard_limit_usd - total_usage / 100` is what is left."""

    object: Literal["list"]
    total_usage: float = Field(description="cents of USD, over the token's whole life")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(description='"ok", or "error: <kind>", per dependency')
    error: ErrorObject | None = Field(None, description="when not ready (503)")
