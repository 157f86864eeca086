"""Fake OpenAI-compatible upstream for the benchmark: `POST /v1/chat/completions`, JSON or SSE stream, and
`POST /v1/images/generations` answering one PNG as `b64_json` (with --image-bytes), as GPT image models do.
With --gemini it is a Gemini API instead: `POST /v1beta/models/{model}:generateContent` answers the PNG as
`inlineData` (a Gemini 4K answer: 20 MB of image are 27 MB of JSON), the key in `x-goog-api-key`.

It shares a core with the load generator, so it must never be the bottleneck: raw asyncio HTTP/1.1
(bench/http1.py), replies built with orjson, the images answer built once at start-up. Checks for a bearer
key (any, or exactly --key).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.aio import loop_factory, raise_nofile_limit, wait_for_stop  # noqa: E402
from bench.http1 import Reply, Request, start_server  # noqa: E402
from bench.png import MIN_PNG_BYTES, make_png  # noqa: E402

REPLY_WORDS = "Hello! I am a fake upstream that answers quickly, so the proxy in front is what gets measured."
WORDS = REPLY_WORDS.split()


@dataclass(frozen=True)
class Options:
    chunks: int
    key: str | None
    delay: float = 0.0  # before each chat or images reply (not /healthz)
    chunk_interval: float = 0.0
    image_bytes: int = 0  # size of the PNG the images endpoint answers; 0: no images endpoint
    gemini: bool = False  # the image is answered by generateContent, as inlineData


def error_reply(
    status: int,
    message: str,
    code: str | None,
    err_type: str = "invalid_request_error",
    param: str | None = None,
) -> Reply:
    error = {"message": message, "type": err_type, "param": param, "code": code}
    return Reply(status, "application/json", orjson.dumps({"error": error}))


# GPT image models always answer base64 and refuse the parameter, with exactly this error.
UNKNOWN_RESPONSE_FORMAT = error_reply(
    400, "Unknown parameter: 'response_format'.", "unknown_parameter", param="response_format"
)


def images_body(png: bytes) -> bytes:
    """The whole `images.generate` answer of a GPT image model for one PNG, serialized once."""
    from gateway.images.sniff import sniff  # the gateway's own check; only this endpoint needs it

    info = sniff(png)
    if info is None or info.mime != "image/png":
        raise ValueError("the generated image is not a PNG")
    usage = {
        "input_tokens": 12,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 12},
        "output_tokens": 4160,
        "total_tokens": 4172,
    }
    body = {
        "created": int(time.time()),
        "background": "opaque",
        "data": [{"b64_json": base64.b64encode(png).decode("ascii")}],
        "output_format": "png",
        "quality": "high",
        "size": f"{info.width}x{info.height}",
        "usage": usage,
    }
    return orjson.dumps(body)


GEMINI_PATH = "/v1beta/models/"
GEMINI_METHOD = ":generateContent"


def gemini_body(png: bytes) -> bytes:
    """A whole `generateContent` answer of a Gemini image model for one PNG, serialized once."""
    usage = {
        "promptTokenCount": 12,
        "candidatesTokenCount": 2000,
        "totalTokenCount": 2012,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}],
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 2000}],
    }
    part = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode("ascii")}}
    body = {
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage,
        "modelVersion": "gemini-bench-image",
        "responseId": "bench",
    }
    return orjson.dumps(body)


class FakeOpenAI:
    """Builds replies; holds only the options and a request counter for ids."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._ids = itertools.count(1)
        self._endpoints: dict[str, Callable[[dict[str, Any]], Reply]] = {"/v1/chat/completions": self._chat}
        self._images_body: bytes | None = None
        if options.image_bytes and options.gemini:
            self._images_body = gemini_body(make_png(options.image_bytes))
        elif options.image_bytes:
            self._images_body = images_body(make_png(options.image_bytes))
            self._endpoints["/v1/images/generations"] = self._images

    def reply(self, req: Request) -> Reply:
        if req.path == "/healthz":
            return Reply(200, "application/json", b'{"status":"ok"}')
        if self.options.gemini and req.path.startswith(GEMINI_PATH) and req.path.endswith(GEMINI_METHOD):
            return self._generate_content(req)
        endpoint = self._endpoints.get(req.path)
        if endpoint is None:
            return error_reply(404, f"Unknown path {req.path}", "not_found")
        if req.method != "POST":
            return error_reply(405, f"Method {req.method} not allowed", "method_not_allowed")
        auth = req.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not token:
            return error_reply(401, "You didn't provide an API key.", "invalid_api_key")
        if self.options.key is not None and token != self.options.key:
            return error_reply(401, "Incorrect API key provided.", "invalid_api_key")
        try:
            payload = orjson.loads(req.body)
        except orjson.JSONDecodeError:
            return error_reply(400, "The request body is not valid JSON.", "invalid_json")
        if not isinstance(payload, dict) or not isinstance(payload.get("model"), str):
            return error_reply(400, "'model' is required.", "missing_model")
        return endpoint(payload)

    def _chat(self, payload: dict[str, Any]) -> Reply:
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            return error_reply(400, "'messages' must be a non-empty array.", "invalid_messages")
        prompt_tokens = sum(
            4 + len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict)
        )
        if payload.get("stream") is True:
            options = payload.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            return self._stream(payload["model"], prompt_tokens, include_usage)
        return self._completion(payload["model"], prompt_tokens)

    def _images(self, payload: dict[str, Any]) -> Reply:
        if "response_format" in payload:
            return UNKNOWN_RESPONSE_FORMAT
        if not isinstance(payload.get("prompt"), str) or not payload["prompt"]:
            return error_reply(400, "'prompt' is required.", "missing_required_parameter", param="prompt")
        assert self._images_body is not None
        return Reply(200, "application/json", self._images_body, delay=self.options.delay)

    def _generate_content(self, req: Request) -> Reply:
        key = req.headers.get("x-goog-api-key", "")
        if not key or (self.options.key is not None and key != self.options.key):
            error = {
                "code": 403,
                "message": "Method doesn't allow unregistered callers",
                "status": "PERMISSION_DENIED",
            }
            return Reply(403, "application/json", orjson.dumps({"error": error}))
        try:
            payload = orjson.loads(req.body)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("contents"), list):
            error = {"code": 400, "message": "contents is required", "status": "INVALID_ARGUMENT"}
            return Reply(400, "application/json", orjson.dumps({"error": error}))
        assert self._images_body is not None
        return Reply(200, "application/json", self._images_body, delay=self.options.delay)

    def _completion(self, model: str, prompt_tokens: int) -> Reply:
        body = {
            "id": f"chatcmpl-bench{next(self._ids):012d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY_WORDS, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage(prompt_tokens, len(WORDS)),
        }
        return Reply(200, "application/json", orjson.dumps(body), delay=self.options.delay)

    def _stream(self, model: str, prompt_tokens: int, include_usage: bool) -> Reply:
        base = {
            "id": f"chatcmpl-bench{next(self._ids):012d}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_bench",
        }
        n = self.options.chunks
        events: list[bytes] = []
        completion_tokens = 0
        for i in range(n):
            delta: dict[str, str] = {}
            if i == 0:
                delta = {"role": "assistant", "content": "" if n > 1 else REPLY_WORDS}
            elif i < n - 1:
                delta = {"content": WORDS[(i - 1) % len(WORDS)] + " "}
            completion_tokens += 1 if delta.get("content") else 0
            choice = {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": "stop" if i == n - 1 else None,
            }
            chunk: dict[str, object] = {**base, "choices": [choice]}
            if include_usage:
                chunk["usage"] = None
            events.append(orjson.dumps(chunk))
        if include_usage:
            events.append(
                orjson.dumps({**base, "choices": [], "usage": usage(prompt_tokens, completion_tokens)})
            )
        events.append(b"[DONE]")
        o = self.options
        content_type = "text/event-stream; charset=utf-8"
        return Reply(200, content_type, events=tuple(events), delay=o.delay, event_interval=o.chunk_interval)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    total = prompt_tokens + completion_tokens
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total}


async def serve(host: str, port: int, options: Options, lifetime: float) -> None:
    server, tasks = await start_server(FakeOpenAI(options).reply, host, port)
    if options.image_bytes:
        shape = "inlineData of generateContent" if options.gemini else "b64_json"
        print(f"fake upstream: images answer one {options.image_bytes:,}-byte PNG as {shape}", flush=True)
    print(f"fake upstream listening on http://{host}:{port}/v1", flush=True)
    try:
        await wait_for_stop("fake upstream", lifetime)
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    p.add_argument("--delay", type=float, default=0.0, help="seconds to sleep before answering")
    p.add_argument("--chunks", type=int, default=20, help="chat.completion.chunk events per stream")
    p.add_argument("--chunk-interval", type=float, default=0.0, help="seconds between stream events")
    p.add_argument("--key", default=None, help="accept only this bearer key (default: any non-empty key)")
    p.add_argument(
        "--image-bytes",
        type=int,
        default=0,
        help="serve /v1/images/generations with a PNG of this many bytes as b64_json (default 0: off)",
    )
    p.add_argument(
        "--gemini", action="store_true", help="answer the PNG as Gemini generateContent inlineData instead"
    )
    p.add_argument("--lifetime", type=float, default=3600.0, help="exit after this many seconds")
    args = p.parse_args(argv)
    if args.chunks < 1:
        p.error("--chunks must be at least 1")
    if args.image_bytes and args.image_bytes < MIN_PNG_BYTES:
        p.error(f"--image-bytes must be 0 or at least {MIN_PNG_BYTES}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile_limit()
    options = Options(
        chunks=args.chunks,
        key=args.key,
        delay=args.delay,
        chunk_interval=args.chunk_interval,
        image_bytes=args.image_bytes,
        gemini=args.gemini,
    )
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(args.host, args.port, options, args.lifetime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
