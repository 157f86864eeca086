"""Gemini `usageMetadata` → the OpenAI usage shapes (§3.2 chat, §4.2 Images API) and the usage record.

`candidatesTokenCount` does not include `thoughtsTokenCount`; `totalTokenCount` does (observed:
prompt 8 + candidates 11 + thoughts 1103 = total 1122). OpenAI counts reasoning inside the completion,
so `completion_tokens` = candidates + thoughts, and the text share of it includes the reasoning
(`reasoning_tokens` is a part of `text_tokens`, as Google bills thinking as text output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.domain import JSONObject, Usage


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _by_modality(details: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in details if isinstance(details, list) else ():
        if isinstance(item, dict) and isinstance(item.get("modality"), str):
            counts[item["modality"]] = counts.get(item["modality"], 0) + _count(item.get("tokenCount"))
    return counts


@dataclass(frozen=True, slots=True)
class GeminiUsage:
    prompt: int = 0
    candidates: int = 0
    thoughts: int = 0
    cached: int = 0
    total: int = 0
    prompt_image: int = 0
    output_image: int = 0

    @classmethod
    def read(cls, meta: Any) -> GeminiUsage | None:
        if not isinstance(meta, dict):
            return None
        prompt, candidates = _count(meta.get("promptTokenCount")), _count(meta.get("candidatesTokenCount"))
        thoughts = _count(meta.get("thoughtsTokenCount"))
        return cls(
            prompt=prompt,
            candidates=candidates,
            thoughts=thoughts,
            cached=_count(meta.get("cachedContentTokenCount")),
            total=_count(meta.get("totalTokenCount")) or prompt + candidates + thoughts,
            prompt_image=_by_modality(meta.get("promptTokensDetails")).get("IMAGE", 0),
            output_image=_by_modality(meta.get("candidatesTokensDetails")).get("IMAGE", 0),
        )

    def __add__(self, other: GeminiUsage) -> GeminiUsage:
        """The usage of two calls (n > 1 images): every count added."""
        return GeminiUsage(
            self.prompt + other.prompt,
            self.candidates + other.candidates,
            self.thoughts + other.thoughts,
            self.cached + other.cached,
            self.total + other.total,
            self.prompt_image + other.prompt_image,
            self.output_image + other.output_image,
        )

    @property
    def completion(self) -> int:
        return self.candidates + self.thoughts

    @property
    def prompt_text(self) -> int:
        """Text tokens of the prompt that were not served from the cache."""
        return max(self.prompt - self.prompt_image - self.cached, 0)

    @property
    def output_text(self) -> int:
        return max(self.completion - self.output_image, 0)

    def chat_usage(self) -> JSONObject:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.total,
            "prompt_tokens_details": {
                "text_tokens": self.prompt_text,
                "image_tokens": self.prompt_image,
                "cached_tokens": self.cached,
            },
            "completion_tokens_details": {
                "text_tokens": self.output_text,
                "image_tokens": self.output_image,
                "reasoning_tokens": self.thoughts,
            },
        }

    def images_usage(self) -> JSONObject:
        return {
            "input_tokens": self.prompt,
            "output_tokens": self.completion,
            "total_tokens": self.total,
            "input_tokens_details": {"text_tokens": self.prompt_text, "image_tokens": self.prompt_image},
            "output_tokens_details": {"text_tokens": self.output_text, "image_tokens": self.output_image},
        }

    def record(self) -> Usage:
        """The usage record's counts; the same as reading `chat_usage()` back (Usage.from_openai)."""
        return Usage(
            prompt_tokens=self.prompt,
            completion_tokens=self.completion,
            total_tokens=self.total,
            text_input_tokens=self.prompt_text,
            cached_input_tokens=self.cached,
            image_input_tokens=self.prompt_image,
            text_output_tokens=self.output_text,
            image_output_tokens=self.output_image,
            reasoning_tokens=self.thoughts,
        )
