import pytest

from gateway.cluster.events import ChannelSwitch, HealthEvent, KeyCooldown, KeyDisabled
from gateway.routing.health import Health
from gateway.routing.policy import Decision
from gateway.routing.stats import WINDOW, Summary
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


# -- what is told to other nodes, and what they tell us --------------------------------------------


class Wall(Clock):
    pass


@pytest.fixture
def wall() -> Wall:
    return Wall(1_700_000_000.0)


@pytest.fixture
def told(health: Health, wall: Wall) -> list[HealthEvent]:
    events: list[HealthEvent] = []
    health._wall = wall
    health.publish = events.append
    return events


def test_a_cooldown_is_published_with_its_wall_clock_end(health: Health, told: list[HealthEvent]) -> None:
    health.failure("a", 1, COOL_30)
    assert told == [KeyCooldown("a", 1, 1_700_000_030.0)]


def test_failures_publish_only_the_cooldown_they_cause(health: Health, told: list[HealthEvent]) -> None:
    health.failure("a", 0, FAILURE)
    health.failure("a", 0, FAILURE)
    assert told == []
    health.failure("a", 0, FAILURE)
    assert told == [KeyCooldown("a", 0, 1_700_000_060.0)]


def test_a_disable_is_published_once(health: Health, told: list[HealthEvent]) -> None:
    health.failure("a", 2, DISABLE)
    health.failure("a", 2, DISABLE)
    assert told == [KeyDisabled("a", 2)]


def test_client_errors_and_successes_publish_nothing(health: Health, told: list[HealthEvent]) -> None:
    health.failure("a", 0, NONE)
    health.success("a", 0)
    assert told == []


def test_a_cooldown_from_another_node_is_honoured_until_it_ends(
    health: Health, clock: Clock, wall: Wall, told: list[HealthEvent]
) -> None:
    health.apply(KeyCooldown("a", 0, wall.now + 20))
    assert not health.available("a", 0)
    assert health.available("a", 1)
    assert health.state("a", 0) == cooling(20.0)
    clock.now += 20
    assert health.available("a", 0)
    assert told == []  # never echoed back


def test_an_ended_cooldown_from_another_node_is_ignored(health: Health, wall: Wall) -> None:
    health.apply(KeyCooldown("a", 0, wall.now - 1))
    assert health.available("a", 0)


def test_a_remote_cooldown_never_shortens_a_local_one(health: Health, clock: Clock, wall: Wall) -> None:
    health.failure("a", 0, COOL_30)
    health.apply(KeyCooldown("a", 0, wall.now + 5))
    clock.now += 10
    assert not health.available("a", 0)


def test_a_disable_from_another_node(health: Health, told: list[HealthEvent]) -> None:
    health.apply(KeyDisabled("a", 1))
    assert not health.available("a", 1)
    assert health.state("a", 1) == ("disabled", None)
    assert told == []


def test_channels_switched_off_and_on(health: Health) -> None:
    assert health.switch_channel("a", False) is True
    assert health.switch_channel("a", False) is False
    assert not health.available("a", 0) and not health.available("a", 5)
    assert not health.channel_enabled("a")
    assert health.available("b", 0)
    health.apply(ChannelSwitch("a", True))
    assert health.available("a", 0) and health.channel_enabled("a")


def test_reload_gives_disabled_keys_another_chance_and_keeps_cooldowns(health: Health) -> None:
    health.failure("a", 0, DISABLE)
    health.failure("a", 1, COOL_30)
    health.reloaded(RetrySettings(failures_to_cooldown=1))
    assert health.available("a", 0)
    assert not health.available("a", 1)
    health.failure("b", 0, FAILURE)  # the new retry settings apply
    assert not health.available("b", 0)


# -- recent attempts ------------------------------------------------------------------------------


def test_recent_success_rate_and_median_latency(health: Health) -> None:
    for ms in (100, 300, 200):
        health.success("a", 0, ms)
    health.failure("a", 0, COOL_30, 5)
    health.success("a", 1, 1000)
    health.failure("a", 1, NONE, 7)  # the client's fault: not counted
    whole, keys = health.stats("a", range(3))
    assert keys[0] == Summary(4, 0.75, 200)
    assert keys[1] == Summary(1, 1.0, 1000)
    assert keys[2] == Summary(0, None, None)
    assert whole == Summary(5, 0.8, 200)  # the lower median of 100, 200, 300, 1000


def test_recent_attempts_slide(health: Health) -> None:
    for _ in range(WINDOW):
        health.failure("a", 0, FAILURE, 1)
    for _ in range(WINDOW // 2):
        health.success("a", 0, 50)
    _, keys = health.stats("a", range(1))
    assert keys[0] == Summary(WINDOW, 0.5, 50)
