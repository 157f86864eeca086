"""Bare re-hosting proxy for the images benchmark: the floor the gateway's images path is compared against.

`POST /v1/images/generations`: check one bearer key, drop `response_format` (GPT image models refuse it),
forward the body upstream with one shared aiohttp ClientSession, parse the answer with orjson, decode each
`data[i].b64_json` once, upload it with boto3 `put_object` in a thread (the client made by the gateway's own
`make_client`, so signing costs the same), put `url` in its place and answer. Nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import ClientError, web
from pydantic import SecretStr

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.aio import loop_factory, raise_nofile_limit  # noqa: E402
from bench.reference_proxy import SESSION, client_session, error_response, healthz, serve_app  # noqa: E402
from gateway.settings import S3Settings  # noqa: E402
from gateway.storage.s3 import make_client  # noqa: E402

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

UPLOAD_THREADS = 40  # as many as anyio's default thread limiter lets the gateway use


@dataclass(frozen=True)
class Config:
    images_url: str
    expected_auth: str
    upstream_auth: str
    bucket: str
    public_base_url: str


CONFIG = web.AppKey("config", Config)
S3 = web.AppKey["S3Client"]("s3")


def _upload(client: S3Client, bucket: str, key: str, data: bytes) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=data, ContentType="image/png")


async def rehost(item: dict[str, Any], client: S3Client, config: Config) -> None:
    data = binascii.a2b_base64(item.pop("b64_json"), strict_mode=True)
    key = f"{secrets.token_hex(16)}.png"
    await asyncio.to_thread(_upload, client, config.bucket, key, data)
    item["url"] = f"{config.public_base_url}/{key}"


async def generations(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    if request.headers.get("Authorization") != config.expected_auth:
        return error_response(401, "Incorrect API key provided.", "invalid_api_key")
    payload = orjson.loads(await request.read())
    payload.pop("response_format", None)
    headers = {"Authorization": config.upstream_auth, "Content-Type": "application/json"}
    try:
        async with request.app[SESSION].post(
            config.images_url, data=orjson.dumps(payload), headers=headers
        ) as upstream:
            raw = await upstream.read()
            if upstream.status != 200:
                return web.Response(status=upstream.status, body=raw, content_type="application/json")
    except (ClientError, ConnectionError, TimeoutError) as exc:
        return error_response(502, f"Upstream error: {type(exc).__name__}", "upstream_error", "api_error")
    answer = orjson.loads(raw)
    del raw
    client = request.app[S3]
    for item in answer.get("data") or []:
        if isinstance(item, dict) and item.get("b64_json"):
            await rehost(item, client, config)
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


def build_app(config: Config, s3: S3Settings) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[CONFIG] = config
    app[S3] = make_client(s3)
    app.cleanup_ctx.append(client_session)
    app.router.add_post("/v1/images/generations", generations)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(host: str, port: int, config: Config, s3: S3Settings, lifetime: float) -> None:
    # asyncio.to_thread runs in the default executor: give it the gateway's thread budget
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=UPLOAD_THREADS))
    await serve_app(build_app(config, s3), host, port, "baseline re-hosting proxy", lifetime)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9400)
    p.add_argument("--upstream", required=True, help="upstream base URL, e.g. http://127.0.0.1:9100/v1")
    p.add_argument("--key", required=True, help="the one bearer key clients must send")
    p.add_argument("--upstream-key", default="sk-upstream-bench", help="bearer key sent to the upstream")
    p.add_argument("--s3-endpoint", required=True, help="e.g. http://127.0.0.1:9300")
    p.add_argument("--bucket", default="bench")
    p.add_argument("--public-base-url", default="http://cdn.invalid/bench", help="image URL = this + /key")
    p.add_argument("--lifetime", type=float, default=3600.0, help="exit after this many seconds")
    args = p.parse_args(argv)
    raise_nofile_limit()
    config = Config(
        images_url=args.upstream.rstrip("/") + "/images/generations",
        expected_auth=f"Bearer {args.key}",
        upstream_auth=f"Bearer {args.upstream_key}",
        bucket=args.bucket,
        public_base_url=args.public_base_url.rstrip("/"),
    )
    s3 = S3Settings(
        endpoint_url=args.s3_endpoint,
        region="us-east-1",
        bucket=args.bucket,
        access_key_id=SecretStr("x"),
        secret_access_key=SecretStr("y"),
        addressing_style="path",
        sign_payload="never",  # as the gateway in the bench: production S3 over https sends no payload hash
        public_base_url=config.public_base_url,
    )
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(args.host, args.port, config, s3, args.lifetime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
