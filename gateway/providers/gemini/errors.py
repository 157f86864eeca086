"""Gemini's error answers `{"error": {"code", "message", "status", "details"}}` → UpstreamError (§2, §6.2).

- RESOURCE_EXHAUSTED (429): the key cools down, for the `RetryInfo.retryDelay` Google sends (or
  Retry-After); the next attempt goes elsewhere.
- UNAVAILABLE (503), INTERNAL (500) and other 5xx: the channel fails over.
- DEADLINE_EXCEEDED (504): a timeout after the request was sent: not retried (§6.2).
- PERMISSION_DENIED (403), UNAUTHENTICATED (401) and an invalid key (a 400 whose details carry
  `API_KEY_INVALID`): the key is disabled; the client gets 502 `upstream_auth_failed`.
- FAILED_PRECONDITION (400, e.g. the region or billing of this key): this channel cannot serve; fail over.
- INVALID_ARGUMENT (400) and the rest of 4xx: the client's request; 400 with the upstream message.
Messages are sanitised (keys, key-like strings and URLs removed) as for OpenAI-compatible upstreams.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.providers.openai.errors import parse_retry_after, sanitize
from gateway.settings import ChannelSettings

_DELAY = re.compile(r"(\d+(?:\.\d+)?)s")
_RETRYABLE_4XX = frozenset({"FAILED_PRECONDITION"})


def _retry_delay(details: list[Any]) -> float | None:
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DELAY.fullmatch(str(detail.get("retryDelay", "")))
            if match is not None:
                return float(match.group(1))
    return None


def _key_invalid(details: list[Any]) -> bool:
    return any(isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in details)


def error_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return {}
    if isinstance(body, list) and body:  # some Google front ends wrap the error in a list
        body = body[0]
    err = body.get("error") if isinstance(body, dict) else None
    return err if isinstance(err, dict) else {}


def gemini_error(
    status: int, raw: bytes, headers: Mapping[str, str], channel: ChannelSettings
) -> UpstreamError:
    """The UpstreamError for an HTTP error answer of a Gemini channel."""
    err = error_object(raw)
    reason = str(err.get("status") or f"HTTP {status}")
    message = sanitize(str(err.get("message") or f"upstream answered HTTP {status}"), channel)
    raw_details = err.get("details")
    details: list[Any] = raw_details if isinstance(raw_details, list) else []
    name = channel.name
    if status in (401, 403) or (status == 400 and _key_invalid(details)):
        # Treated as a 401 by the retry table: the key is disabled until reload (§6.2).
        return UpstreamError(
            f"channel {name}: the upstream refused this gateway's key ({reason})",
            status=502,
            code="upstream_auth_failed",
            upstream_status=status if status in (401, 403) else 401,
        )
    if status == 429:
        retry_after = _retry_delay(details)
        return UpstreamError(
            message,
            status=429,
            code="rate_limit_exceeded",
            upstream_status=429,
            retry_after=retry_after if retry_after is not None else parse_retry_after(headers),
        )
    if status == 504:
        return UpstreamTimeout(f"channel {name}: the upstream timed out ({reason})", sent=True)
    if status >= 500:
        return UpstreamError(message, status=502, code=reason.lower(), upstream_status=status)
    if 400 <= status < 500:
        return UpstreamError(
            message,
            status=status,
            code=reason.lower(),
            upstream_status=status,
            retryable=reason in _RETRYABLE_4XX or status == 404,
            type="invalid_request_error" if status == 400 and reason == "INVALID_ARGUMENT" else None,
        )
    return UpstreamError(message, status=502, code=f"upstream_http_{status}", upstream_status=status)


def bad_answer(channel: ChannelSettings, why: str) -> UpstreamError:
    """A 200 that holds no usable answer: counts as a failure of the channel, which fails over (§6.2)."""
    return UpstreamError(
        f"channel {channel.name}: the upstream answered 200 without a valid answer ({why})",
        status=502,
        code="bad_upstream_response",
        retryable=True,
    )


def content_policy(reason: str, detail: str | None = None) -> UpstreamError:
    """The upstream refused the content: 400 `content_policy_violation` with its reason; not retried.

    `upstream_status` is 400 so that the retry table neither fails over nor marks the key.
    """
    text = f"The request was refused by the upstream's safety filters ({reason})"
    if detail:
        text += f": {detail[:500]}"
    return UpstreamError(
        text,
        status=400,
        code="content_policy_violation",
        upstream_status=400,
        type="invalid_request_error",
    )


def interrupted(channel: ChannelSettings) -> UpstreamError:
    return UpstreamError(
        f"channel {channel.name}: the upstream stream ended before its finishReason",
        status=502,
        code="upstream_stream_interrupted",
    )
