"""A web server holding images at `/img/{name}`, over http and https (a throwaway CA from trustme), in a
thread: the client image URLs of end-to-end tests. Every request is recorded with its headers, so a test
sees that the gateway's fetcher came (and what it sent)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web

from tests.fakes.server import free_port


@dataclass
class Fetch:
    path: str
    headers: dict[str, str]


@dataclass
class ImageHost:
    images: dict[str, bytes] = field(default_factory=dict)
    fetches: list[Fetch] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    ca: trustme.CA = field(default_factory=trustme.CA)
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    def url(self, name: str, *, https: bool = False) -> str:
        if https:
            return f"https://127.0.0.1:{self.https_port}/img/{name}"
        return f"http://127.0.0.1:{self.http_port}/img/{name}"

    def put(self, name: str, data: bytes) -> str:
        with self.lock:
            self.images[name] = data
        return self.url(name)

    def write_ca(self, path: Path) -> Path:
        """The CA certificate in PEM, for `SSL_CERT_FILE` of a gateway process."""
        self.ca.cert_pem.write_to_path(str(path))
        return path

    async def _serve(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        with self.lock:
            self.fetches.append(Fetch(request.path, dict(request.headers)))
            data = self.images.get(name)
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=30)

    def start(self) -> ImageHost:
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)

        async def boot() -> None:
            app = web.Application()
            app.router.add_get("/img/{name}", self._serve)
            self._runner = web.AppRunner(app, shutdown_timeout=0.5)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.http_port).start()
            await web.TCPSite(self._runner, "127.0.0.1", self.https_port, ssl_context=context).start()

        self._call(boot())
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop.close()
