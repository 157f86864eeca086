"""Map an OpenAI-compatible upstream's error answer to an UpstreamError, without leaking secrets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import UpstreamError
from gateway.settings import ChannelSettings

_KEYLIKE = re.compile(r"\b(sk-|AIza)[A-Za-z0-9_\-*]{4,}")
_URL = re.compile(r"https?://[^\s\"'<>]+")


def sanitize(message: str, channel: ChannelSettings) -> str:
    """Remove the channel's keys, key-like strings and URLs from an upstream message (bounded length)."""
    message = message[:4000]  # the regexes below then cost little, whatever the upstream sent
    for secret in channel.api_keys:
        value = secret.get_secret_value()
        if value:
            message = message.replace(value, "***")
    message = _KEYLIKE.sub(r"\1***", message)
    return _URL.sub("[url]", message)[:2000]


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def error_message(body: Any, channel: ChannelSettings) -> str | None:
    """The sanitized message of an OpenAI-shaped `{"error": …}` body, if it has one."""
    err = body.get("error") if isinstance(body, dict) else None
    message = err.get("message") if isinstance(err, dict) else err
    return sanitize(message, channel) if isinstance(message, str) and message else None


def _field(err: dict[str, Any], name: str, channel: ChannelSettings) -> str | None:
    value = err.get(name)
    return None if value is None else sanitize(str(value)[:200], channel)


def upstream_error(
    status: int, raw: bytes | bytearray, headers: Mapping[str, str], channel: ChannelSettings
) -> UpstreamError:
    """An error status mapped to §2: 4xx kept (401/403 excepted), 504 is upstream_timeout, else 502."""
    if status in (401, 403):
        return UpstreamError(
            f"channel {channel.name}: the upstream refused the gateway's own credentials (HTTP {status}); "
            "the operator must fix the channel's key. Your API key is fine.",
            code="upstream_auth_failed",
            upstream_status=status,
        )
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    message = error_message(body, channel) or f"upstream answered HTTP {status}"
    err = body.get("error") if isinstance(body, dict) else None
    err = err if isinstance(err, dict) else {}
    code, param, utype = (_field(err, k, channel) for k in ("code", "param", "type"))
    if status == 504:
        return UpstreamError(message, status=504, code="upstream_timeout", upstream_status=status)
    client_status = status if 400 <= status < 500 else 502
    is_policy = code == "content_policy_violation" or (
        utype == "image_generation_user_error" and "safety" in message
    )
    return UpstreamError(
        message,
        status=client_status,
        code="content_policy_violation" if is_policy else (code or f"upstream_http_{status}"),
        param=param,
        upstream_status=status,
        retry_after=parse_retry_after(headers),
        type="invalid_request_error" if is_policy else None,
    )
