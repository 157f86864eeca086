"""The map group → model → channels, built once from the config (and again, whole, on a reload).

A Catalog never changes after it is built: a reload builds a new one and swaps the reference, so a
request keeps the channels it was routed with. Channels switched off at run time are not this map's
business: routing skips them through Health, which every node keeps in step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gateway.domain import Operation
from gateway.settings import ChannelSettings

Supports = Callable[[ChannelSettings, Operation], bool]


class Catalog:
    def __init__(self, channels: Sequence[ChannelSettings], supports: Supports) -> None:
        self._supports = supports
        self._by_group_model: dict[tuple[str, str], list[ChannelSettings]] = {}
        self._models: dict[str, list[str]] = {}
        self._candidates: dict[tuple[str, str, Operation], list[ChannelSettings]] = {}
        self._all = list(channels)
        for channel in channels:
            if not channel.enabled:
                continue
            for group in channel.groups:
                models = self._models.setdefault(group, [])
                for model in channel.models:
                    self._by_group_model.setdefault((group, model), []).append(channel)
                    if model not in models:
                        models.append(model)

    def candidates(self, group: str, model: str, operation: Operation) -> list[ChannelSettings]:
        """Channels enabled in the config serving the model to the group for the operation.

        Cached: do not mutate.
        """
        key = (group, model, operation)
        found = self._candidates.get(key)
        if found is None:
            found = [
                ch for ch in self._by_group_model.get((group, model), ()) if self._supports(ch, operation)
            ]
            self._candidates[key] = found
        return found

    def channels(self) -> list[ChannelSettings]:
        """Every configured channel, those with `enabled: false` included, in config order."""
        return list(self._all)

    def channel(self, name: str) -> ChannelSettings | None:
        return next((ch for ch in self._all if ch.name == name), None)

    def serves(self, group: str, model: str) -> bool:
        return (group, model) in self._by_group_model

    def models(self, group: str) -> list[str]:
        return list(self._models.get(group, ()))
