import pytest

from gateway.routing.health import Health
from gateway.routing.policy import Decision
from gateway.settings import RetrySettings


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


COOL_30 = Decision(True, "key", "cooldown", 30.0)
FAILURE = Decision(True, "channel", "failure")
DISABLE = Decision(True, "key", "disable")
NONE = Decision(False, "channel", "none")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> Health:
    return Health(RetrySettings(failures_to_cooldown=3, failure_cooldown_seconds=60), clock=clock)


def cooling(seconds: float) -> object:
    return ("cooling", pytest.approx(seconds))


def test_new_key_is_available(health: Health) -> None:
    assert health.available("a", 0)
    assert health.state("a", 0) == ("ok", None)


def test_cooldown_expires(health: Health, clock: Clock) -> None:
    health.failure("a", 0, COOL_30)
    assert not health.available("a", 0)
    assert health.state("a", 0) == cooling(30.0)
    clock.now += 29.9
    assert not health.available("a", 0)
    assert health.state("a", 0) == cooling(0.1)
    clock.now += 0.1
    assert health.available("a", 0)
    assert health.state("a", 0) == ("ok", None)


def test_cooldown_is_per_key_and_channel(health: Health) -> None:
    health.failure("a", 0, COOL_30)
    assert health.available("a", 1)
    assert health.available("b", 0)


def test_zero_cooldown_does_not_rest_the_key(health: Health) -> None:
    health.failure("a", 0, Decision(True, "key", "cooldown", 0.0))
    assert health.available("a", 0)


def test_consecutive_failures_cool_the_key(health: Health, clock: Clock) -> None:
    health.failure("a", 0, FAILURE)
    health.failure("a", 0, FAILURE)
    assert health.available("a", 0)
    health.failure("a", 0, FAILURE)
    assert not health.available("a", 0)
    assert health.state("a", 0) == cooling(60.0)
    clock.now += 59
    assert not health.available("a", 0)
    clock.now += 1
    assert health.available("a", 0)
    # the count started over: it takes three more failures to rest the key again
    health.failure("a", 0, FAILURE)
    health.failure("a", 0, FAILURE)
    assert health.available("a", 0)
    health.failure("a", 0, FAILURE)
    assert not health.available("a", 0)


def test_success_resets_the_failure_count(health: Health) -> None:
    health.failure("a", 0, FAILURE)
    health.failure("a", 0, FAILURE)
    health.success("a", 0)
    health.failure("a", 0, FAILURE)
    health.failure("a", 0, FAILURE)
    assert health.available("a", 0)
    health.failure("a", 0, FAILURE)
    assert not health.available("a", 0)


def test_failures_counted_per_key(health: Health) -> None:
    health.failure("a", 0, FAILURE)
    health.failure("a", 1, FAILURE)
    health.failure("b", 0, FAILURE)
    health.failure("a", 0, FAILURE)
    assert health.available("a", 0)
    assert health.available("a", 1)


def test_failures_to_cooldown_setting_is_honoured(clock: Clock) -> None:
    health = Health(RetrySettings(failures_to_cooldown=1, failure_cooldown_seconds=5), clock=clock)
    health.failure("a", 0, FAILURE)
    assert health.state("a", 0) == cooling(5.0)


def test_no_health_change_for_client_errors(health: Health) -> None:
    for _ in range(10):
        health.failure("a", 0, NONE)
    assert health.available("a", 0)


def test_disabled_stays_disabled(health: Health, clock: Clock) -> None:
    health.failure("a", 1, DISABLE)
    assert not health.available("a", 1)
    assert health.state("a", 1) == ("disabled", None)
    clock.now += 10**9
    health.success("a", 1)
    assert not health.available("a", 1)
    assert health.state("a", 1) == ("disabled", None)
    assert health.available("a", 0)


def test_disabled_logs_the_channel(health: Health, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("ERROR", logger="gateway.routing"):
        health.failure("openai-main", 2, DISABLE)
    assert "openai-main" in caplog.text and "#2" in caplog.text


def test_next_start_round_robin_per_channel(health: Health) -> None:
    assert [health.next_start("a") for _ in range(3)] == [0, 1, 2]
    assert health.next_start("b") == 0
    assert health.next_start("a") == 3
