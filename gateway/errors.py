"""The one error hierarchy. Everything below `api/` raises these; `api/errors.py` renders them.

Each error knows its HTTP status, OpenAI error `type` and `code`, the offending `param`, and
whether the failover loop may retry it on another channel or key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

FailureScope = Literal["key", "channel"]


class GatewayError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationError(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class RequestTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class InsufficientQuota(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class NoAvailableChannel(ServiceUnavailable):
    code = "no_available_channel"


class InvalidImage(InvalidRequest):
    code = "invalid_image"


class InvalidImageURL(InvalidRequest):
    code = "invalid_image_url"


class StorageUnavailable(GatewayError):
    status = 502
    type = "server_error"
    code = "storage_unavailable"


class UpstreamError(GatewayError):
    """An upstream answered with an error, or could not be reached.

    `retryable` says whether the failover loop may try another candidate; `scope` says what
    the failure rules out for the rest of the request: one key, or the whole channel.
    `retry_after` is the upstream's Retry-After in seconds, when it sent one.
    """

    type = "upstream_error"
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        code: str | None = None,
        param: str | None = None,
        upstream_status: int | None = None,
        retryable: bool = False,
        scope: FailureScope = "channel",
        retry_after: float | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, param=param, type=type)
        self.upstream_status = upstream_status
        self.retryable = retryable
        self.scope: FailureScope = scope
        self.retry_after = retry_after


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"

    def __init__(self, message: str, *, sent: bool, retryable: bool = False) -> None:
        super().__init__(message, status=504, retryable=retryable, scope="channel")
        self.sent = sent


class BadUpstreamResponse(UpstreamError):
    """The upstream answered 200 with something that is not an answer (§2): a 5xx of that channel."""

    code = "bad_upstream_response"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True, scope="channel")


class UpstreamTooLarge(UpstreamError):
    """An upstream answer (or one event of a stream) over `limits.max_upstream_response_mb`."""

    code = "upstream_response_too_large"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True, scope="channel")


class UpstreamStreamInterrupted(UpstreamError):
    """A stream that stopped before its end: sent to the client as an SSE error event, never `[DONE]`."""

    code = "upstream_stream_interrupted"

    def __init__(self, message: str) -> None:
        super().__init__(message, scope="channel")


class ImageURLNotAvailable(InvalidRequest):
    code = "image_url_not_available"
