"""A fake S3 endpoint that only takes uploads, for the images benchmark: storage must never be the bottleneck.

`PUT /{bucket}/{key}` reads the body as it arrives and throws it away (counting bytes), answering 200 with an
ETag; `HEAD /{bucket}` answers 200; anything else 404. Raw asyncio (request heads parsed by bench/http1.py),
`Expect: 100-continue` honoured, keep-alive. Harness endpoints: `GET /healthz`, `GET /_stats` (JSON counts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

if __package__ in (None, ""):  # run as a file: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.aio import loop_factory, raise_nofile_limit, wait_for_stop  # noqa: E402
from bench.http1 import MAX_HEAD_BYTES, MAX_QUEUED_PER_CONNECTION, BadRequest, parse_head  # noqa: E402

MAX_OBJECT_BYTES = 1 << 30
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 411: "Length Required"}


@dataclass
class Stats:
    requests: int = 0
    puts: int = 0
    put_bytes: int = 0
    min_put_bytes: int | None = None
    max_put_bytes: int = 0


@dataclass(frozen=True)
class Head:
    method: str
    path: str
    keep_alive: bool
    length: int


def reply(status: int, *, body: bytes = b"", keep_alive: bool = True, extra: str = "") -> bytes:
    content_type = "application/json" if body.startswith(b"{") else "application/xml"
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
        "Server: bench-fake-s3",
        f"Content-Length: {len(body)}",
        *([f"Content-Type: {content_type}"] if body else []),
        *([extra] if extra else []),
        *([] if keep_alive else ["Connection: close"]),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def s3_error(status: int, code: str, keep_alive: bool = True) -> bytes:
    body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code></Error>'.encode()
    return reply(status, body=body, keep_alive=keep_alive)


class S3Sink(asyncio.Protocol):
    """One connection: a head is parsed, then its body is counted and dropped chunk by chunk."""

    def __init__(self, bucket: str, stats: Stats) -> None:
        self.bucket = bucket
        self.stats = stats
        self.head_buf = bytearray()
        self.current: Head | None = None
        self.remaining = 0  # body bytes of `current` still to come
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            for _ in range(MAX_QUEUED_PER_CONNECTION):  # requests pipelined in one read, bounded
                if self.current is not None:
                    taken = min(self.remaining, len(view))
                    self.remaining -= taken
                    view = view[taken:]
                    if self.remaining == 0:
                        self._answer()
                    if not view:
                        return
                    continue
                view = self._take_head(view)
                if self.current is None:
                    return
                if self.remaining == 0:
                    self._answer()
                    if not view:
                        return
        except BadRequest:
            self._write(s3_error(400, "BadRequest", keep_alive=False))
            self._close()

    def _take_head(self, view: memoryview) -> memoryview:
        """Add `view` to the head buffer; once a head is complete, start its request and return the rest."""
        self.head_buf += view
        end = self.head_buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head_buf) > MAX_HEAD_BYTES:
                raise BadRequest("head too large")
            return memoryview(b"")
        method, target, version, headers = parse_head(bytes(self.head_buf[:end]))
        rest = memoryview(bytes(self.head_buf[end + 4 :]))
        self.head_buf.clear()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise BadRequest("chunked uploads are not supported")  # boto3 sends Content-Length
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError as exc:
            raise BadRequest("bad content-length") from exc
        if not 0 <= length <= MAX_OBJECT_BYTES:
            raise BadRequest("bad content-length")
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        self.current = Head(method, target.split("?", 1)[0], keep_alive, length)
        self.remaining = length
        if length and headers.get("expect", "").lower() == "100-continue":
            self._write(CONTINUE)
        return rest

    def _answer(self) -> None:
        head, self.current = self.current, None
        assert head is not None
        self.stats.requests += 1
        self._write(self._route(head))
        if not head.keep_alive:
            self._close()

    def _route(self, head: Head) -> bytes:
        parts = head.path.lstrip("/").split("/", 1)
        bucket, key = parts[0], (parts[1] if len(parts) > 1 else "")
        if head.method == "PUT" and bucket == self.bucket and key:
            s = self.stats
            s.puts += 1
            s.put_bytes += head.length
            s.max_put_bytes = max(s.max_put_bytes, head.length)
            s.min_put_bytes = head.length if s.min_put_bytes is None else min(s.min_put_bytes, head.length)
            return reply(200, keep_alive=head.keep_alive, extra=f'ETag: "{s.puts:032x}"')
        if head.method == "HEAD" and bucket == self.bucket and not key:
            return reply(200, keep_alive=head.keep_alive, extra="x-amz-bucket-region: us-east-1")
        if head.method == "GET" and head.path == "/healthz":
            return reply(200, body=b'{"status":"ok"}', keep_alive=head.keep_alive)
        if head.method == "GET" and head.path == "/_stats":
            return reply(200, body=json.dumps(asdict(self.stats)).encode(), keep_alive=head.keep_alive)
        if head.method == "HEAD":
            return reply(404, keep_alive=head.keep_alive)
        return s3_error(404, "NoSuchBucket" if bucket != self.bucket else "NoSuchKey", head.keep_alive)

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(host: str, port: int, bucket: str, lifetime: float) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats()
    server = await loop.create_server(
        lambda: S3Sink(bucket, stats), host, port, backlog=4096, reuse_address=True
    )
    print(f"fake S3 listening on http://{host}:{port} (bucket {bucket})", flush=True)
    try:
        await wait_for_stop("fake S3", lifetime)
    finally:
        server.close()
        print(f"fake S3: {json.dumps(asdict(stats))}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9300)
    p.add_argument("--bucket", default="bench")
    p.add_argument("--lifetime", type=float, default=3600.0, help="exit after this many seconds")
    args = p.parse_args(argv)
    raise_nofile_limit()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(args.host, args.port, args.bucket, args.lifetime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
