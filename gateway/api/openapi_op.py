"""The vocabulary of the OpenAPI table: one `Op` per public operation, and the §2 wording of each error
status. The rows are in `openapi_ops.py` (client and public routes) and `openapi_ops_admin.py`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

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
    # The answer's media types: application/json is `ok`'s schema; text/* is text, any other is binary.
    ok_media: tuple[str, ...] = field(default=("application/json",))
    ok_description: str = "OK"
    other: tuple[tuple[int, type[BaseModel]], ...] = ()  # answers other than the §2 error, by status
    # Descriptions of the parameters the route declares, by name (each must be one it declares).
    params: Mapping[str, str] = field(default_factory=dict)
    # Query parameters that clients send and the route accepts without reading: name -> description.
    ignored: Mapping[str, str] = field(default_factory=dict)
    # This operation's own wording of an error status, where ERROR_TEXT's is not what it means here.
    error_text: Mapping[int, str] = field(default_factory=dict)


# Each error status, in the words of §2; a scope's own wording wins, and an operation's own over both.
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


def error_text(op: Op | None, auth: Auth, status: int) -> str:
    """What an error status of this operation means."""
    own = op.error_text.get(status) if op is not None else None
    return own or ERROR_TEXT.get((auth, status)) or ERROR_TEXT.get((None, status)) or "Error"
