"""Map an OpenAI-compatible upstream's error answer to an UpstreamError, without leaking secrets."""

from __future__ import annotations

import re
from collections.abc import Mapping

import orjson

from gateway.errors import UpstreamError
from gateway.settings import ChannelSettings

_KEYLIKE = re.compile(r"\b(sk-|AIza)[A-Za-z0-9_\-*]{4,}")
_URL = re.compile(r"https?://[^\s\"'<>]+")


def sanitize(message: str, channel: ChannelSettings) -> str:
    """Remove the channel's keys, key-like strings and URLs from an upstream message."""
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


def upstream_error(
    status: int, raw: bytes, headers: Mapping[str, str], channel: ChannelSettings
) -> UpstreamError:
    message, code, param, utype = f"upstream answered HTTP {status}", None, None, None
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or message)
        code = str(err["code"]) if err.get("code") is not None else None
        param = str(err["param"]) if err.get("param") is not None else None
        utype = str(err["type"]) if err.get("type") is not None else None
    elif isinstance(err, str):
        message = err
    client_status = status if 400 <= status < 500 else 502
    is_policy = code == "content_policy_violation" or (
        utype == "image_generation_user_error" and "safety" in message
    )
    return UpstreamError(
        sanitize(message, channel),
        status=client_status,
        code="content_policy_violation" if is_policy else (code or f"upstream_http_{status}"),
        param=param,
        upstream_status=status,
        retry_after=parse_retry_after(headers),
        type="invalid_request_error" if is_policy else None,
    )
