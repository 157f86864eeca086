"""Provider per channel kind, and which operations each kind can do."""

from __future__ import annotations

import aiohttp

from gateway.domain import ImageResolver, Operation
from gateway.providers.base import Provider
from gateway.providers.gemini.adapter import GeminiProvider
from gateway.providers.http1 import Http1Client
from gateway.providers.mock import MockProvider
from gateway.providers.openai.chat import OpenAIProvider
from gateway.settings import ChannelSettings


class ProviderRegistry:
    """`resolve` turns client image references into bytes for providers that send images inline
    (Gemini) through the Provider protocol; the runtime supplies it (it owns the fetcher and the
    storage). The pipeline's typed Gemini calls take a per-request resolver instead."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        max_response_bytes: int,
        resolve: ImageResolver,
        lean: Http1Client | None = None,
    ) -> None:
        self.gemini = GeminiProvider(session, max_response_bytes, resolve)
        self._by_kind: dict[str, Provider] = {
            "openai": OpenAIProvider(session, max_response_bytes, lean),
            "gemini": self.gemini,
            "mock": MockProvider(),
        }

    def for_channel(self, channel: ChannelSettings) -> Provider:
        return self._by_kind[channel.kind]

    def supports(self, channel: ChannelSettings, operation: Operation) -> bool:
        provider = self._by_kind.get(channel.kind)
        return provider is not None and operation in provider.operations
