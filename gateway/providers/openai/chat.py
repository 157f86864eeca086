"""OpenAI-compatible upstreams: chat forwarded as sent (model mapped), Images API as JSON or multipart."""

from __future__ import annotations

import functools

import aiohttp
import orjson

from gateway.domain import ImageCall, JSONObject, Operation, Target
from gateway.providers.http1 import Http1Client
from gateway.providers.openai.answers import chat_problem, images_problem, parse_images_answer
from gateway.providers.openai.http import OpenAIStream, open_stream, post

PATHS: dict[Operation, str] = {
    "chat": "/chat/completions",
    "images.generate": "/images/generations",
    "images.edit": "/images/edits",
}


def multipart(call: ImageCall) -> aiohttp.FormData:
    """Scalar fields as form fields (lists and objects as JSON), then every file with its real type."""
    form = aiohttp.FormData(quote_fields=False)
    for name, value in call.body.items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = value
        else:
            text = orjson.dumps(value).decode()
        form.add_field(name, text)
    for part in call.files:
        form.add_field(part.field, part.data, filename=part.filename, content_type=part.mime)
    return form


def _body(call: ImageCall) -> JSONObject | aiohttp.FormData:
    return multipart(call) if call.multipart else call.body


class OpenAIProvider:
    operations: frozenset[Operation] = frozenset(PATHS)

    def __init__(
        self, session: aiohttp.ClientSession, max_response_bytes: int, lean: Http1Client | None = None
    ) -> None:
        self._session = session
        self._max = max_response_bytes
        self._lean = lean  # chat completions, the most frequent call (providers/http1.py)

    async def chat(self, target: Target, body: JSONObject) -> JSONObject:
        return await post(
            self._session,
            target,
            PATHS["chat"],
            body,
            max_bytes=self._max,
            check=chat_problem,
            lean=self._lean,
        )

    async def open_chat_stream(self, target: Target, body: JSONObject) -> OpenAIStream:
        return await open_stream(
            self._session, target, PATHS["chat"], body, max_bytes=self._max, lean=self._lean
        )

    async def images(self, target: Target, call: ImageCall) -> JSONObject:
        # Base64 the client gets back as base64 stays the text that came (never decoded, re-encoded).
        parse = functools.partial(parse_images_answer, keep_base64=not call.decode_images)
        path, body = PATHS[call.operation], _body(call)
        return await post(
            self._session, target, path, body, max_bytes=self._max, parse=parse, check=images_problem
        )

    async def open_images_stream(self, target: Target, call: ImageCall) -> OpenAIStream:
        return await open_stream(
            self._session, target, PATHS[call.operation], _body(call), max_bytes=self._max
        )
