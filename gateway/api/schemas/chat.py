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
