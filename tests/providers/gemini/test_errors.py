"""Gemini error answers → UpstreamError, and what the retry table does with each (§2, §6.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import UpstreamTimeout
from gateway.providers.gemini.errors import gemini_error
from gateway.routing.policy import classify
from gateway.settings import RetrySettings
from tests.fakes.gemini_upstream import KEY
from tests.providers.gemini.conftest import channel

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gemini"
CHANNEL = channel(api_keys=[KEY, "AIzaSecondKeyForTheChannel00"])
RETRY = RetrySettings()


def error(name: str, status: int, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return gemini_error(status, (FIXTURES / name).read_bytes(), headers or {}, CHANNEL)


def test_resource_exhausted_cools_the_key_for_googles_retry_delay() -> None:
    err = error("error_429_resource_exhausted.json", 429)
    assert (err.status, err.code, err.upstream_status, err.retry_after) == (
        429,
        "rate_limit_exceeded",
        429,
        46.0,
    )
    assert "https://" not in err.message and "[url]" in err.message
    decision = classify(err, RETRY)
    assert (decision.retry, decision.scope, decision.health, decision.cooldown_seconds) == (
        True,
        "key",
        "cooldown",
        46.0,
    )


def test_resource_exhausted_without_retry_info_uses_retry_after() -> None:
    err = gemini_error(
        429, b'{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}', {"Retry-After": "7"}, CHANNEL
    )
    assert err.retry_after == 7.0


@pytest.mark.parametrize(
    ("name", "status"), [("error_503_unavailable.json", 503), ("error_500_internal.json", 500)]
)
def test_unavailable_and_internal_fail_over_to_another_channel(name: str, status: int) -> None:
    err = error(name, status)
    assert (err.status, err.upstream_status) == (502, status)
    assert err.code == ("unavailable" if status == 503 else "internal")
    decision = classify(err, RETRY)
    assert (decision.retry, decision.scope) == (True, "channel")


def test_deadline_exceeded_is_a_timeout_that_is_not_retried() -> None:
    err = error("error_504_deadline_exceeded.json", 504)
    assert isinstance(err, UpstreamTimeout) and err.status == 504 and err.code == "upstream_timeout"
    assert not classify(err, RETRY).retry


def test_invalid_argument_is_the_clients_400_with_the_upstream_message() -> None:
    err = error("error_400_invalid_argument.json", 400)
    assert (err.status, err.code, err.type) == (400, "invalid_argument", "invalid_request_error")
    assert "unsupported aspect ratio 7:3" in err.message
    decision = classify(err, RETRY)
    assert not decision.retry and decision.health == "none"


@pytest.mark.parametrize(
    ("name", "status"),
    [("error_400_api_key_invalid.json", 400), ("error_403_permission_denied.json", 403)],
)
def test_an_invalid_or_refused_key_is_disabled_and_the_client_gets_upstream_auth_failed(
    name: str, status: int
) -> None:
    err = error(name, status)
    assert (err.status, err.code) == (502, "upstream_auth_failed")
    assert err.code != "invalid_api_key"  # the client's own token was fine
    decision = classify(err, RETRY)
    assert (decision.retry, decision.scope, decision.health) == (True, "key", "disable")


def test_unauthenticated_disables_the_key_too() -> None:
    err = gemini_error(401, b'{"error": {"code": 401, "status": "UNAUTHENTICATED"}}', {}, CHANNEL)
    assert classify(err, RETRY).health == "disable"


def test_failed_precondition_and_not_found_fail_over() -> None:
    for status, reason in ((400, "FAILED_PRECONDITION"), (404, "NOT_FOUND")):
        raw = f'{{"error": {{"code": {status}, "message": "m", "status": "{reason}"}}}}'.encode()
        decision = classify(gemini_error(status, raw, {}, CHANNEL), RETRY)
        assert (decision.retry, decision.scope) == (True, "channel")


def test_keys_and_urls_never_reach_the_message() -> None:
    raw = (
        '{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "bad key '
        + KEY
        + " and AIzaOtherKey123456 at https://generativelanguage.googleapis.com/v1beta/x?key="
        + KEY
        + '"}}'
    ).encode()
    message = gemini_error(400, raw, {}, CHANNEL).message
    assert KEY not in message and "AIzaOtherKey123456" not in message and "googleapis" not in message


@pytest.mark.parametrize("raw", [b"", b"<html>502 Bad Gateway</html>", b"[]", b'{"error": "text"}'])
def test_bodies_that_are_not_google_errors_still_map_by_status(raw: bytes) -> None:
    err = gemini_error(502, raw, {}, CHANNEL)
    assert (err.status, err.upstream_status) == (502, 502)
    assert classify(err, RETRY).retry
