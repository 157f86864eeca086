"""Bare reference proxy for the benchmark: check one bearer key, forward, nothing else.

aiohttp server plus one shared ClientSession (TCPConnector(limit=0)); SSE bodies are passed through chunk by
chunk, other answers read whole and written on unchanged. It is the floor the gateway is compared against:
the cost of an async Python hop with no features.

- `POST /v1/chat/completions`: the body forwarded as it came.
- `POST /v1/images/generations` (bare pass-through): the upstream's base64 answer passed through unchanged.
  `response_format` is dropped from the (small) request, as GPT image models refuse it and always answer
  `b64_json`; a `gemini*` model is asked with the smallest `generateContent` request and its answer (the
  image as `inlineData`) passed through as it is, in the Gemini shape.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.aio import loop_factory, raise_nofile_limit, wait_for_stop  # noqa: E402


@dataclass(frozen=True)
class Config:
    chat_url: str
    expected_auth: str
    upstream_auth: str
    upstream_key: str = ""

    @property
    def images_url(self) -> str:
        return self.chat_url.removesuffix("/chat/completions") + "/images/generations"

    def gemini_url(self, model: str) -> str:  # the upstream root is the OpenAI base URL without /v1
        root = self.chat_url.removesuffix("/chat/completions").removesuffix("/v1")
        return f"{root}/v1beta/models/{model}:generateContent"


CONFIG = web.AppKey("config", Config)
SESSION = web.AppKey("session", aiohttp.ClientSession)


def error_response(
    status: int, message: str, code: str, err_type: str = "invalid_request_error"
) -> web.Response:
    error = {"message": message, "type": err_type, "param": None, "code": code}
    return web.json_response({"error": error}, status=status)


async def forward(request: web.Request, url: str, body: bytes, headers: dict[str, str]) -> web.StreamResponse:
    """POST `body` upstream and answer with what comes back: SSE chunk by chunk, anything else whole."""
    response: web.StreamResponse | None = None
    try:
        async with request.app[SESSION].post(url, data=body, headers=headers) as upstream:
            content_type = upstream.headers.get("Content-Type", "application/json")
            if not content_type.startswith("text/event-stream"):
                payload = await upstream.read()
                return web.Response(
                    status=upstream.status, body=payload, headers={"Content-Type": content_type}
                )
            response = web.StreamResponse(
                status=upstream.status, headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
    except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
        if response is not None:  # headers already sent: all we can do is end the stream
            return response
        return error_response(502, f"Upstream error: {type(exc).__name__}", "upstream_error", "api_error")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    if request.headers.get("Authorization") != config.expected_auth:
        return error_response(401, "Incorrect API key provided.", "invalid_api_key")
    body = await request.read()
    headers = {"Authorization": config.upstream_auth, "Content-Type": "application/json"}
    return await forward(request, config.chat_url, body, headers)


async def images_generations(request: web.Request) -> web.StreamResponse:
    """The bare pass-through: one key, the upstream's base64 answer forwarded unchanged."""
    config = request.app[CONFIG]
    if request.headers.get("Authorization") != config.expected_auth:
        return error_response(401, "Incorrect API key provided.", "invalid_api_key")
    try:
        payload = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return error_response(400, "The request body is not valid JSON.", "invalid_json")
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), str):
        return error_response(400, "'model' is required.", "missing_model")
    payload.pop("response_format", None)  # GPT image models refuse it: they always answer b64_json
    model: str = payload["model"]
    if model.startswith("gemini"):
        contents = [{"role": "user", "parts": [{"text": str(payload.get("prompt", ""))}]}]
        headers = {"x-goog-api-key": config.upstream_key, "Content-Type": "application/json"}
        return await forward(request, config.gemini_url(model), orjson.dumps({"contents": contents}), headers)
    headers = {"Authorization": config.upstream_auth, "Content-Type": "application/json"}
    return await forward(request, config.images_url, orjson.dumps(payload), headers)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def client_session(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the one upstream ClientSession of the app, in app[SESSION]."""
    timeout = aiohttp.ClientTimeout(total=600, sock_connect=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        app[SESSION] = session
        yield


def build_app(config: Config) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[CONFIG] = config
    app.cleanup_ctx.append(client_session)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/images/generations", images_generations)
    app.router.add_get("/healthz", healthz)
    return app


async def serve_app(app: web.Application, host: str, port: int, name: str, lifetime: float) -> None:
    """Run `app` on host:port until SIGTERM/SIGINT or the end of its lifetime."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=4096).start()
        print(f"{name} listening on http://{host}:{port}", flush=True)
        await wait_for_stop(name, lifetime)
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9200)
    p.add_argument("--upstream", required=True, help="upstream base URL, e.g. http://127.0.0.1:9100/v1")
    p.add_argument("--key", required=True, help="the one bearer key clients must send")
    p.add_argument("--upstream-key", default="sk-upstream-bench", help="bearer key sent to the upstream")
    p.add_argument("--lifetime", type=float, default=3600.0, help="exit after this many seconds")
    args = p.parse_args(argv)
    raise_nofile_limit()
    config = Config(
        chat_url=args.upstream.rstrip("/") + "/chat/completions",
        expected_auth=f"Bearer {args.key}",
        upstream_auth=f"Bearer {args.upstream_key}",
        upstream_key=args.upstream_key,
    )
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve_app(build_app(config), args.host, args.port, "reference proxy", args.lifetime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
