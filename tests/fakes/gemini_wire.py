"""Check Gemini wire bodies against Google's own types (google-genai, UPSTREAM.md §7).

`GenerateContentResponse` validates an answer or a stream frame in REST camelCase and refuses a
misspelt field; a request's `contents` and `systemInstruction` are `Content`, and its
`generationConfig` is checked with `GenerateContentConfig` (the SDK's `GenerationConfig` lacks
`imageConfig`). Error bodies are Google's `{"error": {code, message, status}}`.
"""

from __future__ import annotations

from typing import Any

from google.genai import types

_CONFIG_ONLY = {"generationConfig", "contents", "systemInstruction", "safetySettings"}


def check_answer(body: Any) -> None:
    if isinstance(body, dict) and "error" in body:
        error = body["error"]
        assert set(error) <= {"code", "message", "status", "details"}, error
        assert isinstance(error["code"], int) and isinstance(error["message"], str)
        assert isinstance(error["status"], str)
        return
    types.GenerateContentResponse.model_validate(body)


def check_request(body: Any) -> None:
    assert set(body) <= _CONFIG_ONLY, set(body) - _CONFIG_ONLY
    for content in body["contents"]:
        types.Content.model_validate(content)
    if "systemInstruction" in body:
        types.Content.model_validate(body["systemInstruction"])
    if "generationConfig" in body:
        types.GenerateContentConfig.model_validate(body["generationConfig"])
    for setting in body.get("safetySettings", []):
        types.SafetySetting.model_validate(setting)
