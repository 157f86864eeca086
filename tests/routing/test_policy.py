import pytest

from gateway.errors import BadUpstreamResponse, UpstreamError, UpstreamTimeout, UpstreamTooLarge
from gateway.routing.policy import Decision, classify
from gateway.settings import RetrySettings

RETRY = RetrySettings(cooldown_seconds=30, max_cooldown_seconds=120)


def upstream(
    status: int | None, *, retry_after: float | None = None, retryable: bool = False
) -> UpstreamError:
    return UpstreamError("boom", upstream_status=status, retry_after=retry_after, retryable=retryable)


def test_connection_error_is_retried_on_another_channel() -> None:
    assert classify(upstream(None), RETRY) == Decision(True, "channel", "failure")


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_server_errors_are_retried_on_another_channel(status: int) -> None:
    assert classify(upstream(status), RETRY) == Decision(True, "channel", "failure")


def test_429_cools_the_key_for_retry_after() -> None:
    assert classify(upstream(429, retry_after=12.5), RETRY) == Decision(True, "key", "cooldown", 12.5)


def test_429_retry_after_is_capped() -> None:
    decision = classify(upstream(429, retry_after=3600), RETRY)
    assert decision == Decision(True, "key", "cooldown", 120.0)


def test_429_without_retry_after_uses_cooldown_seconds() -> None:
    assert classify(upstream(429), RETRY) == Decision(True, "key", "cooldown", 30.0)
    other = RetrySettings(cooldown_seconds=5)
    assert classify(upstream(429), other).cooldown_seconds == 5.0


def test_429_cooldown_seconds_also_capped() -> None:
    retry = RetrySettings(cooldown_seconds=90, max_cooldown_seconds=45)
    assert classify(upstream(429), retry).cooldown_seconds == 45.0


def test_429_retry_after_zero_means_no_rest() -> None:
    assert classify(upstream(429, retry_after=0), RETRY).cooldown_seconds == 0.0


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusal_disables_only_the_key(status: int) -> None:
    assert classify(upstream(status), RETRY) == Decision(True, "key", "disable")


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    decision = classify(upstream(status), RETRY)
    assert decision.retry is False
    assert decision.health == "none"  # the key did nothing wrong


def test_retryable_flag_on_an_otherwise_final_status() -> None:
    assert classify(upstream(408, retryable=True), RETRY) == Decision(True, "channel", "failure")


def test_other_5xx_not_retried_but_counted_against_the_key() -> None:
    assert classify(upstream(501), RETRY) == Decision(False, "channel", "failure")


def test_timeout_after_send_is_not_retried() -> None:
    decision = classify(UpstreamTimeout("slow", sent=True), RETRY)
    assert decision == Decision(False, "channel", "failure")


def test_timeout_after_send_retried_when_configured() -> None:
    retry = RetrySettings(retry_on_timeout=True)
    assert classify(UpstreamTimeout("slow", sent=True), retry) == Decision(True, "channel", "failure")


def test_connect_timeout_is_retried() -> None:
    assert classify(UpstreamTimeout("slow", sent=False), RETRY) == Decision(True, "channel", "failure")


def test_upstream_504_is_not_retried() -> None:
    """The upstream may still be generating (and charging for) the image (§6.2)."""
    assert classify(upstream(504), RETRY) == Decision(False, "channel", "failure")


def test_upstream_504_retried_when_timeouts_are() -> None:
    retry = RetrySettings(retry_on_timeout=True)
    assert classify(upstream(504), retry) == Decision(True, "channel", "failure")


def test_a_bad_or_oversize_200_fails_over_like_a_5xx() -> None:
    for error in (BadUpstreamResponse("not json"), UpstreamTooLarge("too big")):
        assert classify(error, RETRY) == Decision(True, "channel", "failure")
