"""Fake OpenAI-compatible upstream for the benchmark: `POST /v1/chat/completions`, JSON or SSE stream.

It shares a core with the load generator, so it must never be the bottleneck: raw asyncio HTTP/1.1
(bench/http1.py), replies built with orjson. Checks for a bearer key (any, or exactly --key).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.aio import loop_factory, raise_nofile_limit  # noqa: E402
from bench.http1 import Reply, Request, start_server  # noqa: E402

REPLY_WORDS = "Hello! I am a fake upstream that answers quickly, so the proxy in front is what gets measured."
WORDS = REPLY_WORDS.split()


@dataclass(frozen=True)
class Options:
    chunks: int
    key: str | None
    delay: float = 0.0  # before each chat reply (not /healthz)
    chunk_interval: float = 0.0


def error_reply(
    status: int, message: str, code: str | None, err_type: str = "invalid_request_error"
) -> Reply:
    error = {"message": message, "type": err_type, "param": None, "code": code}
    return Reply(status, "application/json", orjson.dumps({"error": error}))


class FakeOpenAI:
    """Builds replies; holds only the options and a request counter for ids."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._ids = itertools.count(1)

    def reply(self, req: Request) -> Reply:
        if req.path == "/healthz":
            return Reply(200, "application/json", b'{"status":"ok"}')
        if req.path != "/v1/chat/completions":
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
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server, tasks = await start_server(FakeOpenAI(options).reply, host, port)
    print(f"fake upstream listening on http://{host}:{port}/v1", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), timeout=lifetime)
    except TimeoutError:
        print("fake upstream: lifetime reached, exiting", file=sys.stderr)
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
    p.add_argument("--lifetime", type=float, default=3600.0, help="exit after this many seconds")
    args = p.parse_args(argv)
    if args.chunks < 1:
        p.error("--chunks must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile_limit()
    options = Options(chunks=args.chunks, key=args.key, delay=args.delay, chunk_interval=args.chunk_interval)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(args.host, args.port, options, args.lifetime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
