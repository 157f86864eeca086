"""The retry table (§6.2): what an upstream failure means for this request and for the key's health."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.errors import FailureScope, UpstreamError, UpstreamTimeout
from gateway.settings import RetrySettings

# 504 is not here: the upstream's own timeout may hide an image still generating, and charged (§6.2).
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 529})


@dataclass(frozen=True, slots=True)
class Decision:
    retry: bool  # may the next attempt go to another candidate?
    scope: FailureScope  # what this request may no longer use: the key or the whole channel
    health: Literal["none", "cooldown", "failure", "disable"]  # what happens to the key's health
    cooldown_seconds: float = 0.0


def classify(error: UpstreamError, retry: RetrySettings) -> Decision:
    if isinstance(error, UpstreamTimeout):
        # A request that reached the upstream may have produced (and been charged for) an image.
        may_retry = retry.retry_on_timeout or not error.sent
        return Decision(may_retry, "channel", "failure")
    status = error.upstream_status
    # Connection refused, reset, DNS: nothing was produced. A bad or oversize answer: a 5xx of the channel.
    if status is None:
        return Decision(True, "channel", "failure")
    if status == 429:
        wait = retry.cooldown_seconds if error.retry_after is None else error.retry_after
        return Decision(True, "key", "cooldown", min(max(wait, 0.0), retry.max_cooldown_seconds))
    if status in (401, 403):
        return Decision(True, "key", "disable")
    if status == 504:  # a timeout after the request was sent, reported by the upstream itself
        return Decision(retry.retry_on_timeout, "channel", "failure")
    if status in RETRYABLE_STATUSES or error.retryable:
        return Decision(True, "channel", "failure")
    if status >= 500:
        return Decision(False, "channel", "failure")
    return Decision(False, "channel", "none")
