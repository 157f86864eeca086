"""Pure ordering of candidates: priority tiers (higher first), weighted random order inside a tier."""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import groupby

from gateway.settings import ChannelSettings


def order_channels(channels: Sequence[ChannelSettings], rng: random.Random) -> list[ChannelSettings]:
    """Weighted shuffle per priority tier (Efraimidis–Spirakis keys: u ** (1 / weight))."""
    if len(channels) == 1:
        return [channels[0]]
    ordered: list[ChannelSettings] = []
    by_priority = sorted(channels, key=lambda c: -c.priority)
    for _, tier in groupby(by_priority, key=lambda c: c.priority):
        members = list(tier)
        if len(members) > 1:
            members.sort(key=lambda c: rng.random() ** (1.0 / c.weight), reverse=True)
        ordered.extend(members)
    return ordered


def key_order(n_keys: int, start: int) -> list[int]:
    """Round robin: every key index once, beginning at `start`."""
    if n_keys <= 1:
        return [0]
    return [(start + i) % n_keys for i in range(n_keys)]
