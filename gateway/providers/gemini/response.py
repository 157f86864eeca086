"""A `GenerateContentResponse` (a whole answer, or one streamed frame) → typed values (§3.4, §4.2).

`candidates[0].content.parts` hold text, thought text (`thought: true`), and images (`inlineData`,
decoded once: each `"data": "…"` is decoded straight from the body buffer, see inline_images.py).
Images marked `thought: true` are the model's drafts (Gemini 3 image models sketch up to two before
the final one) and are not part of the answer. A `thoughtSignature` stays with its image.
`promptFeedback.blockReason` (the prompt was refused before generation) raises a 400
`content_policy_violation`; a 200 without candidates or with an `error` object is a bad answer.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import pybase64

from gateway.domain import Base64Image, DecodedImage, UpstreamImage
from gateway.errors import UpstreamError
from gateway.providers.gemini.errors import bad_answer, content_policy
from gateway.providers.gemini.usage import GeminiUsage
from gateway.providers.inline_images import index_of, split_base64, split_base64_text
from gateway.settings import ChannelSettings

FinishReason = Literal["stop", "length", "content_filter"]
# §3.4: the reasons that mean the upstream refused the content (the FinishReason enum of google-genai).
CONTENT_FILTER = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "IMAGE_OTHER",
        "NO_IMAGE",
        "MODEL_ARMOR",
    }
)


def finish_reason(reason: str) -> FinishReason:
    if reason == "MAX_TOKENS":
        return "length"
    return "content_filter" if reason in CONTENT_FILTER else "stop"


def refusal_text(reason: str, message: str | None) -> str:
    text = f"The upstream stopped without a full answer ({reason})."
    return f"{text} {message[:500]}" if message else text


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    thought: bool = False


Part = TextPart | UpstreamImage
Blobs = list[bytes] | list[memoryview]  # the values split out of a body: decoded, or base64 text


@dataclass(frozen=True, slots=True)
class Frame:
    """One `GenerateContentResponse`: a whole answer, or one frame of a stream."""

    parts: tuple[Part, ...]
    finish: str | None  # Gemini's finishReason, as sent
    finish_message: str | None
    usage: GeminiUsage | None
    response_id: str | None


def load(
    raw: bytes | bytearray, channel: ChannelSettings, *, whole: bool = True, keep_base64: bool = False
) -> Frame:
    """Parse one answer body (`whole`) or stream frame; images are decoded without a text copy, or with
    `keep_base64` kept as their base64 text (checked, never decoded) for a client that gets base64.

    A stream frame may carry no candidate (a last frame with only `usageMetadata`); an answer may not.
    """
    split = split_base64_text(raw, b"data") if keep_base64 else split_base64(raw, b"data")
    blobs: list[bytes] | list[memoryview] = []
    try:
        if split is not None:
            rest, blobs = split
            doc = orjson.loads(rest)
            frame = read(doc, blobs, channel, whole=whole)
            if sum(isinstance(p, UpstreamImage) for p in frame.parts) + _drafts(doc) == len(blobs):
                return frame
            # A `"data"` key somewhere other than inlineData: read the document as it was sent.
        return read(orjson.loads(raw), [], channel, whole=whole)
    except orjson.JSONDecodeError:
        raise bad_answer(channel, "not JSON") from None


def _drafts(doc: Any) -> int:
    """Thought images (dropped from the answer) that took one of the split-out values."""
    parts = _parts(doc)
    return sum(1 for p in parts if isinstance(p, dict) and p.get("thought") is True and "inlineData" in p)


def _candidate(doc: Any) -> Any:
    candidates = doc.get("candidates") if isinstance(doc, dict) else None
    return candidates[0] if isinstance(candidates, list) and candidates else None


def _parts(doc: Any) -> list[Any]:
    candidate = _candidate(doc)
    content = candidate.get("content") if isinstance(candidate, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    return parts if isinstance(parts, list) else []


def read(doc: Any, blobs: Blobs, channel: ChannelSettings, *, whole: bool = True) -> Frame:
    if not isinstance(doc, dict):
        raise bad_answer(channel, "not a JSON object")
    if "error" in doc:
        raise bad_answer(channel, "an error object")
    feedback = doc.get("promptFeedback")
    block = feedback.get("blockReason") if isinstance(feedback, dict) else None
    candidate = _candidate(doc)
    if block and candidate is None:
        message = feedback.get("blockReasonMessage") if isinstance(feedback, dict) else None
        raise content_policy(str(block), str(message) if message else None)
    if not isinstance(candidate, dict):
        if whole or candidate is not None:
            raise bad_answer(channel, "no candidates")
        candidate = {}
    parts = tuple(p for raw in _parts(doc) if (p := _part(raw, blobs, channel)) is not None)
    finish = candidate.get("finishReason")
    message = candidate.get("finishMessage")
    response_id = doc.get("responseId")
    return Frame(
        parts=parts,
        finish=str(finish) if finish else None,
        finish_message=str(message) if isinstance(message, str) and message else None,
        usage=GeminiUsage.read(doc.get("usageMetadata")),
        response_id=response_id if isinstance(response_id, str) else None,
    )


def _part(raw: Any, blobs: Blobs, channel: ChannelSettings) -> Part | None:
    if not isinstance(raw, dict):
        return None
    thought = raw.get("thought") is True
    inline = raw.get("inlineData")
    if isinstance(inline, dict):
        if thought:
            return None  # a draft image of the model's thinking, not its answer
        return _image(inline, raw.get("thoughtSignature"), blobs, channel)
    text = raw.get("text")
    if isinstance(text, str) and text:
        return TextPart(text, thought)
    return None


def _image(inline: dict[str, Any], signature: Any, blobs: Blobs, channel: ChannelSettings) -> UpstreamImage:
    data = inline.get("data")
    index = index_of(data, len(blobs)) if blobs else None
    blob: bytes | memoryview
    if index is not None:
        blob = blobs[index]
    elif isinstance(data, str) and data:
        try:
            blob = pybase64.b64decode(data, validate=True)
        except binascii.Error:
            raise bad_answer(channel, "an inlineData image that is not base64") from None
    else:
        raise bad_answer(channel, "an inlineData part without data")
    mime = inline.get("mimeType")
    claimed = mime if isinstance(mime, str) else None
    signed = signature if isinstance(signature, str) and signature else None
    if isinstance(blob, memoryview):  # split out as base64 text: it stays so
        return Base64Image(blob, claimed, signed)
    return DecodedImage(blob, claimed, signed)


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole `generateContent` answer, translated."""

    text: str
    reasoning: str
    images: tuple[UpstreamImage, ...]
    finish_reason: FinishReason
    upstream_reason: str  # Gemini's finishReason as sent (STOP when it sent none)
    refusal: str | None  # for content_filter: the reason, for the client
    usage: GeminiUsage
    response_id: str | None = None


def answer(frame: Frame, channel: ChannelSettings) -> Answer:
    """A non-stream answer. A 200 that says nothing at all (no text, no image, no refusal) is bad."""
    text = "".join(p.text for p in frame.parts if isinstance(p, TextPart) and not p.thought)
    reasoning = "".join(p.text for p in frame.parts if isinstance(p, TextPart) and p.thought)
    images = tuple(p for p in frame.parts if isinstance(p, UpstreamImage))
    reason = frame.finish or "STOP"
    mapped = finish_reason(reason)
    if mapped == "stop" and not (text or images):
        raise bad_answer(channel, f"no text and no image, finishReason {reason}")
    return Answer(
        text=text,
        reasoning=reasoning,
        images=images,
        finish_reason=mapped,
        upstream_reason=reason,
        refusal=refusal_text(reason, frame.finish_message) if mapped == "content_filter" else None,
        usage=frame.usage or GeminiUsage(),
        response_id=frame.response_id,
    )


def no_image_error(answers: list[Answer]) -> UpstreamError:
    """§4.2: an Images API call that delivered no image is a 400 carrying the upstream's reason."""
    reasons = sorted({a.upstream_reason for a in answers}) or ["NO_IMAGE"]
    reason = ", ".join(reasons)
    if reasons == ["STOP"]:
        reason = "NO_IMAGE: the model answered with text only"
    detail = next((a.text for a in answers if a.text), None)
    return content_policy(reason, detail)
