"""The chat completions request, validated; the original body is what gets forwarded.

Numbers are strict, as the OpenAPI document generated from this model says and as OpenAI checks: an
integer is a JSON integer, a number is a JSON number, never a string or a boolean.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContentPart(_Open):
    type: StrictStr


class ChatMessage(_Open):
    role: StrictStr
    content: StrictStr | list[ContentPart] | None = None


class StreamOptions(_Open):
    include_usage: StrictBool | None = None


class ChatCompletionRequest(_Open):
    model: StrictStr = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    group: StrictStr | None = None
    n: StrictInt | None = Field(None, ge=1, le=128)
    temperature: StrictFloat | None = Field(None, ge=0, le=2)
    top_p: StrictFloat | None = Field(None, ge=0, le=1)
    max_tokens: StrictInt | None = Field(None, ge=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    stop: StrictStr | list[StrictStr] | None = None
    image_generation: StrictBool | None = None
    modalities: list[StrictStr] | None = None
    image_config: dict[str, Any] | None = None


# The fields a plain body may hold without a check beyond the one below; any other declared field (n,
# temperature, stop…) sends the body through the model. Undeclared fields are allowed by the model.
_DECLARED = frozenset(ChatCompletionRequest.model_fields)
_PLAIN = frozenset({"model", "messages", "stream", "stream_options", "group"})


def plain_request(body: dict[str, Any]) -> tuple[str, str | None, bool, bool] | None:
    """(model, group, stream, include_usage) of a body the model would accept as it is, checked without
    building it: text messages, no constrained field. None when in doubt: then the model validates the
    body and says what is wrong with it, in the §2 shape, as it always does."""
    model = body.get("model")
    messages = body.get("messages")
    if type(model) is not str or not model or type(messages) is not list or not messages:
        return None
    for message in messages:
        if type(message) is not dict or type(message.get("role")) is not str:
            return None
        content = message.get("content")
        if content is not None and type(content) is not str:
            return None
    for key in body:
        if key in _DECLARED and key not in _PLAIN:
            return None
    stream, options, group = body.get("stream"), body.get("stream_options"), body.get("group")
    if stream is not None and type(stream) is not bool or group is not None and type(group) is not str:
        return None
    include_usage = None
    if options is not None:
        if type(options) is not dict:
            return None
        include_usage = options.get("include_usage")
        if include_usage is not None and type(include_usage) is not bool:
            return None
    return model, group, bool(stream), bool(include_usage)
