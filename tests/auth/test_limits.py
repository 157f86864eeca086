from dataclasses import replace

import pytest

from gateway.auth.limits import Limiter
from gateway.domain import Caller
from gateway.errors import RateLimited


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def caller(token_id: str = "tok_a", rpm: int | None = None, concurrency: int | None = None) -> Caller:
    return Caller(
        token_id=token_id,
        name=token_id,
        group="default",
        allowed_groups=(),
        models=None,
        chat_image_field=None,
        rpm_limit=rpm,
        max_concurrency=concurrency,
        quota_micro_usd=None,
        used_micro_usd=0,
        expires_at=None,
        key_hash="h",
    )


def refused(limiter: Limiter, who: Caller) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        limiter.acquire(who)
    err = info.value
    assert (err.status, err.type, err.code) == (429, "rate_limit_error", "rate_limit_exceeded")
    return err


def test_no_limits_never_refuse_and_owe_no_release() -> None:
    limiter = Limiter(clock=Clock(0))
    for _ in range(1000):
        assert limiter.acquire(caller()) is False


def test_rpm_window_with_retry_after() -> None:
    clock = Clock(120.0)  # the start of a minute
    limiter = Limiter(clock=clock)
    who = caller(rpm=3)
    for _ in range(3):
        assert limiter.acquire(who) is False
    err = refused(limiter, who)
    assert err.headers == {"Retry-After": "60"}
    assert "3 requests per minute" in err.message
    clock.now = 150.5
    assert refused(limiter, who).headers["Retry-After"] == "30"
    clock.now = 179.99
    assert refused(limiter, who).headers["Retry-After"] == "1"
    clock.now = 180.0  # a new minute
    for _ in range(3):
        limiter.acquire(who)
    refused(limiter, who)


def test_refused_requests_do_not_use_up_the_next_window() -> None:
    clock = Clock(0.0)
    limiter = Limiter(clock=clock)
    who = caller(rpm=1)
    limiter.acquire(who)
    for _ in range(5):
        refused(limiter, who)
    clock.now = 60.0
    limiter.acquire(who)


def test_rpm_is_per_token() -> None:
    limiter = Limiter(clock=Clock(10.0))
    a, b = caller("a", rpm=1), caller("b", rpm=1)
    limiter.acquire(a)
    limiter.acquire(b)
    refused(limiter, a)
    refused(limiter, b)


def test_concurrency_acquire_and_release() -> None:
    limiter = Limiter(clock=Clock(0))
    who = caller(concurrency=2)
    assert limiter.acquire(who) is True
    assert limiter.acquire(who) is True
    err = refused(limiter, who)
    assert err.headers == {"Retry-After": "1"}
    assert "2 requests in flight" in err.message
    limiter.release(who)
    assert limiter.acquire(who) is True
    refused(limiter, who)
    limiter.release(who)
    limiter.release(who)
    assert limiter.acquire(who) is True
    assert limiter.acquire(who) is True


def test_concurrency_is_per_token() -> None:
    limiter = Limiter(clock=Clock(0))
    a, b = caller("a", concurrency=1), caller("b", concurrency=1)
    limiter.acquire(a)
    assert limiter.acquire(b) is True
    refused(limiter, a)


def test_extra_release_does_not_grant_extra_slots() -> None:
    limiter = Limiter(clock=Clock(0))
    who = caller(concurrency=1)
    limiter.release(who)
    limiter.release(who)
    limiter.acquire(who)
    refused(limiter, who)


def test_limits_follow_the_callers_current_values() -> None:
    limiter = Limiter(clock=Clock(0))
    who = caller(rpm=1)
    limiter.acquire(who)
    refused(limiter, who)
    limiter.acquire(replace(who, rpm_limit=2))  # limit raised by an admin


def test_concurrency_refusal_does_not_count_against_rpm() -> None:
    # An rpm-refused request is not counted; neither should one refused for concurrency be.
    limiter = Limiter(clock=Clock(0))
    who = caller(rpm=2, concurrency=1)
    assert limiter.acquire(who) is True
    refused(limiter, who)  # concurrency
    limiter.release(who)
    assert limiter.acquire(who) is True  # the second request of this minute
