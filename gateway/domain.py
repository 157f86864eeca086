"""Frozen value objects passed between stages: the caller, a routing target, attempts, usage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import orjson
import pybase64

from gateway.settings import ChannelSettings

Operation = Literal["chat", "images.generate", "images.edit"]
JSONObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Caller:
    """The token a request authenticated with, as the hot path needs it."""

    token_id: str
    name: str
    group: str
    allowed_groups: tuple[str, ...]
    models: tuple[str, ...] | None
    chat_image_field: str | None
    rpm_limit: int | None
    max_concurrency: int | None
    quota_micro_usd: int | None
    used_micro_usd: int
    expires_at: datetime | None
    key_hash: str

    def may_use_group(self, group: str) -> bool:
        return group == self.group or group in self.allowed_groups

    def may_use_model(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True, slots=True)
class Target:
    """One attempt's destination: a channel and the index of one of its keys."""

    channel: ChannelSettings
    key_index: int

    @property
    def api_key(self) -> str | None:
        keys = self.channel.api_keys
        return keys[self.key_index].get_secret_value() if keys else None


@dataclass(frozen=True, slots=True)
class ImagePart:
    """One image file of an edit: the form field it goes in, its bytes, and the type its magic bytes say."""

    field: str
    filename: str
    data: bytes
    mime: str


@dataclass(frozen=True, slots=True)
class ImageCall:
    """An Images API request as the provider sends it: JSON fields, plus files when sent as multipart.

    `decode_images`: the answer's base64 images will be stored, so the provider may hand them over
    already decoded (as `DecodedImage` in place of the `b64_json` text).
    """

    operation: Operation
    body: JSONObject
    files: tuple[ImagePart, ...] = ()
    multipart: bool = False
    decode_images: bool = False


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """The bytes of an upstream image (`b64_json`, Gemini `inlineData`), decoded straight from its answer.

    `mime` is what the upstream claimed (storage sniffs the bytes anyway). `thought_signature` is the
    Gemini `thoughtSignature` that came with the image: kept with the stored image and sent back with it
    when a later chat turn edits it (§3.4).
    """

    data: bytes
    mime: str | None = None
    thought_signature: str | None = None


class Base64Image:
    """An upstream image's base64 text, kept as the bytes that arrived (§5.4): a `b64_json` or Gemini
    `inlineData` value that goes back to a client as base64 is never decoded and encoded again.

    The provider that split it out of the answer checked that it is clean, padded base64 (so it can be
    written into JSON as it is); the images stage sniffs `head()`. `data` decodes it, for the rare paths
    that need the bytes (storing it, a `data:` URL). Not a dataclass: orjson would write it as an object,
    while `answer_json` writes it as the JSON string it was.
    """

    __slots__ = ("text", "mime", "thought_signature")

    def __init__(
        self, text: bytes | memoryview, mime: str | None = None, thought_signature: str | None = None
    ) -> None:
        self.text = text
        self.mime = mime
        self.thought_signature = thought_signature

    def __len__(self) -> int:
        return len(self.text)

    def __repr__(self) -> str:
        return f"Base64Image({len(self.text)} chars, mime={self.mime!r})"

    @property
    def data(self) -> bytes:
        return pybase64.b64decode(self.text, validate=True)

    def head(self, chars: int = 4096) -> bytes:
        """The first bytes of the image (about `chars` * 3/4 of them): enough to sniff its type."""
        return pybase64.b64decode(self.text[: chars - chars % 4], validate=True)


UpstreamImage = DecodedImage | Base64Image
_SLOT = orjson.Fragment(b'"\x00"')  # orjson escapes NUL in every string it writes: only slots hold one


def answer_json_parts(body: Any) -> list[bytes | memoryview]:
    """`body` as JSON in pieces, each `Base64Image` in it a piece of its own: the JSON string it arrived
    as, still in the upstream's buffer. Neither decoded nor encoded, nor copied until it is sent."""
    images: list[Base64Image] = []

    def slot(value: object) -> orjson.Fragment:
        if isinstance(value, Base64Image):
            images.append(value)
            return _SLOT
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    text = orjson.dumps(body, default=slot)
    if not images:
        return [text]
    pieces = text.split(b"\x00")
    parts: list[bytes | memoryview] = [pieces[0]]
    for image, piece in zip(images, pieces[1:], strict=True):
        parts += (image.text, piece)
    return parts


def answer_json(body: Any) -> bytes:
    """`body` as JSON in one piece (see `answer_json_parts`)."""
    parts = answer_json_parts(body)
    return parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)


@dataclass(frozen=True, slots=True)
class InputImage:
    """An input image resolved to bytes: a client's image, or one of this gateway's stored answers.

    `mime` comes from the magic bytes. `thought_signature` is set only for an image this gateway
    stored from a Gemini answer that carried one.
    """

    data: bytes
    mime: str
    thought_signature: str | None = None


class ImageResolver(Protocol):
    """Turns an image reference (https, http or `data:` URL) into bytes, or raises a 400-class error.

    Injected into provider translations by the pipeline: it owns the SSRF-safe fetcher and knows which
    URLs point at this gateway's own storage (those are read back, with their thought signature).
    `what` names the reference for error messages (`messages[1].content[0].image_url`).
    """

    async def __call__(self, url: str, what: str) -> InputImage: ...


@dataclass(frozen=True, slots=True)
class Attempt:
    channel: str
    key_index: int
    status: int | str
    duration_ms: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "key_index": self.key_index,
            "status": self.status,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    text_input_tokens: int = 0
    cached_input_tokens: int = 0
    image_input_tokens: int = 0
    text_output_tokens: int = 0
    image_output_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: Any) -> Usage | None:
        """Read an OpenAI chat (`prompt_*`) or Images API (`input_*`) usage object."""
        if not isinstance(usage, dict):
            return None
        prompt = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
        completion = _int(usage.get("completion_tokens", usage.get("output_tokens")))
        total = _int(usage.get("total_tokens")) or prompt + completion
        pd = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
        cd = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
        pd = pd if isinstance(pd, dict) else {}
        cd = cd if isinstance(cd, dict) else {}
        cached = _int(pd.get("cached_tokens"))
        image_in = _int(pd.get("image_tokens"))
        image_out = _int(cd.get("image_tokens"))
        reasoning = _int(cd.get("reasoning_tokens"))
        text_in = _int(pd["text_tokens"]) if "text_tokens" in pd else max(prompt - cached - image_in, 0)
        if not cd and "output_tokens" in usage and "completion_tokens" not in usage:
            # The Images API counts only image tokens as output and often sends no output details.
            image_out = completion
        text_out = _int(cd["text_tokens"]) if "text_tokens" in cd else max(completion - image_out, 0)
        return cls(prompt, completion, total, text_in, cached, image_in, text_out, image_out, reasoning)


MAX_TOKENS = 10**12  # an upstream's count beyond this is nonsense, and would overflow a BIGINT sum


def _int(value: Any) -> int:
    """A token count from an untrusted answer: an int in 0..MAX_TOKENS, anything else 0."""
    if type(value) is not int:  # bool (an int subclass) and every other type included
        return 0
    return value if 0 <= value <= MAX_TOKENS else min(max(value, 0), MAX_TOKENS)


@dataclass(slots=True)
class UsageRecord:
    """One request that reached routing; written off the request path by the usage writer."""

    request_id: str
    created_at: datetime
    token_id: str
    group: str
    endpoint: str
    model: str
    stream: bool
    upstream_model: str | None = None
    channel: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    status: Literal["success", "failed"] = "failed"
    http_status: int = 0
    error_code: str | None = None
    latency_ms: int = 0
    ttfb_ms: int | None = None
    usage: Usage = field(default_factory=Usage)
    image_count: int = 0
    image_size: str | None = None
    image_quality: str | None = None
    unit_price_micro_usd: int = 0
    cost_micro_usd: int = 0
    usage_estimated: bool = False
    shortfall_micro_usd: int = 0  # cost the quota could not cover at settlement
