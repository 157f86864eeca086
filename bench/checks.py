"""The one request each measurement sends before any load, and what its answer must look like, so a
misconfigured target fails loudly instead of measuring errors."""

from __future__ import annotations

import binascii
import json
from typing import Any

from bench.png import PNG_SIGNATURE
from bench.procs import http_call
from bench.scenarios import Scenario
from bench.targets import PUBLIC_BASE_URL, Running


def sanity_check(scenario: Scenario, running: Running, timeout_s: float) -> str:
    headers = {"Authorization": f"Bearer {running.key}", "Content-Type": "application/json"}
    url = f"{running.base_url}{scenario.path}"
    status, resp_headers, body = http_call("POST", url, scenario.body().encode(), headers, timeout=timeout_s)
    if status != 200:
        raise RuntimeError(f"sanity request got HTTP {status}: {body[:300]!r}")
    if scenario.image_bytes and scenario.rehost:
        return check_image_answer(body)
    if scenario.image_bytes:
        return check_b64_answer(body, scenario.image_bytes)
    if not scenario.stream:
        content = json.loads(body)["choices"][0]["message"]["content"]
        return f"chat.completion, {len(content)} chars of content"
    if not resp_headers.get("content-type", "").startswith("text/event-stream"):
        raise RuntimeError(f"stream answered with content-type {resp_headers.get('content-type')!r}")
    events = [line for line in body.decode().split("\n") if line.startswith("data: ")]
    if not events or events[-1].strip() != "data: [DONE]":
        raise RuntimeError(f"stream did not end with 'data: [DONE]': {body[-200:]!r}")
    return f"text/event-stream, {len(events)} data events ending with [DONE]"


def check_image_answer(body: bytes) -> str:
    """response_format=url was asked: every image must come back as a storage URL, none as base64."""
    data = json.loads(body).get("data")
    if not isinstance(data, list) or not data:
        raise RuntimeError(f"images answer without data: {body[:300]!r}")
    for n, item in enumerate(data):
        if "b64_json" in item:
            raise RuntimeError(f"data[{n}] still carries b64_json ({len(item['b64_json'] or ''):,} chars)")
        if not str(item.get("url", "")).startswith(PUBLIC_BASE_URL + "/"):
            raise RuntimeError(f"data[{n}].url is not a storage URL: {str(item.get('url'))[:200]!r}")
    return f"{len(data)} image(s) as URL, no b64_json: {data[0]['url']}"


def _base64_image(doc: Any) -> tuple[str, str]:
    """(where, base64 text) of the first image: OpenAI `data[0].b64_json` or Gemini `inlineData.data`."""
    if isinstance(doc, dict) and isinstance(doc.get("data"), list) and doc["data"]:
        item = doc["data"][0]
        if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
            return "data[0].b64_json", item["b64_json"]
        raise RuntimeError(f"data[0] has no b64_json: {sorted(item) if isinstance(item, dict) else item!r}")
    for candidate in doc.get("candidates") or [] if isinstance(doc, dict) else []:
        for part in (candidate.get("content") or {}).get("parts") or []:
            inline = part.get("inlineData") if isinstance(part, dict) else None
            if isinstance(inline, dict) and isinstance(inline.get("data"), str):
                return "inlineData.data", inline["data"]
    raise RuntimeError(f"no base64 image in the answer: {json.dumps(doc)[:300]}")


def check_b64_answer(body: bytes, image_bytes: int) -> str:
    """response_format=b64_json was asked: the image must come back whole, as base64."""
    where, b64 = _base64_image(json.loads(body))
    try:
        png = binascii.a2b_base64(b64, strict_mode=True)
    except binascii.Error as exc:
        raise RuntimeError(f"{where} is not valid base64: {exc}") from None
    if len(png) != image_bytes or not png.startswith(PNG_SIGNATURE):
        raise RuntimeError(f"{where} decodes to {len(png):,} bytes, not the {image_bytes:,}-byte PNG")
    return f"the {image_bytes:,}-byte PNG as {where} ({len(b64):,} chars), no URL"
