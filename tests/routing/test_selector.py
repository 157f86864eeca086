import random
from collections import Counter

import pytest

from gateway.routing.selector import key_order, order_channels
from gateway.settings import ChannelSettings


def channel(name: str, priority: int = 0, weight: float = 1.0) -> ChannelSettings:
    return ChannelSettings(name=name, kind="mock", models=["m"], priority=priority, weight=weight)


def test_priority_tiers_are_strictly_ordered_highest_first() -> None:
    channels = [
        channel("low", priority=1),
        channel("high-a", priority=5),
        channel("mid", priority=3),
        channel("high-b", priority=5),
        channel("negative", priority=-2),
    ]
    rng = random.Random(1234)
    for _ in range(200):
        names = [c.name for c in order_channels(channels, rng)]
        assert set(names[:2]) == {"high-a", "high-b"}
        assert names[2:] == ["mid", "low", "negative"]


def test_every_channel_appears_exactly_once() -> None:
    channels = [channel(f"c{i}", priority=i % 3, weight=1 + i) for i in range(9)]
    ordered = order_channels(channels, random.Random(7))
    assert sorted(c.name for c in ordered) == sorted(c.name for c in channels)


def test_weighted_random_inside_a_tier_follows_the_weights() -> None:
    heavy, light = channel("heavy", weight=3), channel("light", weight=1)
    rng = random.Random(42)
    firsts = Counter(order_channels([light, heavy], rng)[0].name for _ in range(10_000))
    assert firsts["heavy"] / 10_000 == pytest.approx(0.75, abs=0.02)
    assert firsts["light"] / 10_000 == pytest.approx(0.25, abs=0.02)


def test_equal_weights_are_uniform_and_lower_tier_never_first() -> None:
    tier = [channel(n, priority=2) for n in "abc"]
    backup = channel("backup", priority=1, weight=1000)
    rng = random.Random(3)
    firsts: Counter[str] = Counter()
    for _ in range(9_000):
        ordered = order_channels([backup, *tier], rng)
        assert ordered[-1].name == "backup"
        firsts[ordered[0].name] += 1
    for name in "abc":
        assert firsts[name] / 9_000 == pytest.approx(1 / 3, abs=0.03)


def test_order_is_reproducible_with_the_same_seed() -> None:
    channels = [channel(f"c{i}", weight=i + 1) for i in range(6)]
    first = [[c.name for c in order_channels(channels, random.Random(99))] for _ in range(3)]
    assert first[0] == first[1] == first[2]
    other = {tuple(c.name for c in order_channels(channels, random.Random(s))) for s in range(20)}
    assert len(other) > 1  # the order really depends on the random source


@pytest.mark.parametrize(
    ("n_keys", "start", "expected"),
    [
        (3, 0, [0, 1, 2]),
        (3, 1, [1, 2, 0]),
        (3, 2, [2, 0, 1]),
        (3, 4, [1, 2, 0]),  # start wraps around
        (2, 7, [1, 0]),
        (1, 5, [0]),
        (0, 3, [0]),  # a channel without keys (mock) still has one "key"
    ],
)
def test_key_order_round_robin(n_keys: int, start: int, expected: list[int]) -> None:
    assert key_order(n_keys, start) == expected


def test_key_order_successive_starts_spread_first_keys() -> None:
    firsts = [key_order(4, start)[0] for start in range(8)]
    assert firsts == [0, 1, 2, 3, 0, 1, 2, 3]
