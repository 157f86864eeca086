"""The map group → model → channels, built once from the config."""

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
        self._disabled: set[str] = set()  # channels switched off at run time
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
        """Enabled channels serving the model to the group for the operation (cached: do not mutate)."""
        key = (group, model, operation)
        found = self._candidates.get(key)
        if found is None:
            found = [
                ch
                for ch in self._by_group_model.get((group, model), ())
                if ch.name not in self._disabled and self._supports(ch, operation)
            ]
            self._candidates[key] = found
        return found

    def set_enabled(self, channel: str, enabled: bool) -> None:
        """Switch a channel on or off at run time."""
        if enabled:
            self._disabled.discard(channel)
        else:
            self._disabled.add(channel)
        self._candidates.clear()

    def serves(self, group: str, model: str) -> bool:
        return (group, model) in self._by_group_model

    def models(self, group: str) -> list[str]:
        return list(self._models.get(group, ()))
