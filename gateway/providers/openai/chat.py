"""OpenAI-compatible chat: the body is forwarded as the client sent it, model mapped."""

from __future__ import annotations

import aiohttp

from gateway.domain import JSONObject, Operation, Target
from gateway.providers.openai.http import OpenAIStream, open_stream, post_json


class OpenAIProvider:
    operations: frozenset[Operation] = frozenset({"chat"})

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def chat(self, target: Target, body: JSONObject) -> JSONObject:
        return await post_json(self._session, target, "/chat/completions", body)

    async def open_chat_stream(self, target: Target, body: JSONObject) -> OpenAIStream:
        return await open_stream(self._session, target, "/chat/completions", body)
