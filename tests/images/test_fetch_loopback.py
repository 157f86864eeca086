"""End to end against an aiohttp server on 127.0.0.1; only that one address is allowed."""

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import InvalidImageURL
from gateway.images.fetch import ImageFetcher
from gateway.images.sniff import ImageInfo
from tests.images.samples import png
from tests.images.test_fetch_blocking import FakeResolver

LIMIT = 64 * 1024
IMAGE = png((40, 30))


@dataclass
class Loopback:
    port: int = 0
    paths: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _routes(server: Loopback) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.get("/img.png")
    async def image(request: web.Request) -> web.Response:
        return web.Response(body=IMAGE, content_type="image/png")

    @routes.get("/mislabelled")
    async def mislabelled(request: web.Request) -> web.Response:
        return web.Response(body=IMAGE, content_type="text/plain")

    @routes.get("/chain/{n}")
    async def chain(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        location = f"/chain/{n - 1}" if n > 1 else "../img.png"
        raise web.HTTPFound(location)

    @routes.get("/to/{target}")
    async def redirect(request: web.Request) -> web.Response:
        targets = {
            "metadata": "http://169.254.169.254/latest/meta-data/iam/",
            "private": "http://10.0.0.1/x.png",
            "loopback-other": f"http://127.0.0.2:{server.port}/img.png",
            "ftp": "ftp://example.com/x.png",
        }
        raise web.HTTPTemporaryRedirect(targets[request.match_info["target"]])

    @routes.get("/no-location")
    async def no_location(request: web.Request) -> web.Response:
        return web.Response(status=302)

    @routes.get("/big-declared")
    async def big_declared(request: web.Request) -> web.Response:
        return web.Response(body=IMAGE + b"\0" * LIMIT, content_type="image/png")

    @routes.get("/big-streamed")
    async def big_streamed(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            await resp.write(IMAGE)
            for _ in range(160):  # 1.25 MB
                await resp.write(b"\0" * 8192)
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        return resp

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(server.release.wait(), 5)
        return web.Response(body=IMAGE, content_type="image/png")

    @routes.get("/slow-body")
    async def slow_body(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.content_length = len(IMAGE) + 10
        await resp.prepare(request)
        try:
            await resp.write(IMAGE)
            await asyncio.wait_for(server.release.wait(), 5)
            await resp.write(b"\0" * 10)
        except (ConnectionResetError, ConnectionError):
            pass
        return resp

    @routes.get("/html")
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>hello</body></html>", content_type="image/png")

    @routes.get("/empty")
    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=200)

    return routes


@pytest.fixture
async def server() -> AsyncIterator[Loopback]:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        loopback.paths.append(request.path)
        return await handler(request)

    loopback = Loopback()
    app = web.Application(middlewares=[record])
    app.router.add_routes(_routes(loopback))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    loopback.port = runner.addresses[0][1]
    try:
        yield loopback
    finally:
        loopback.release.set()
        await runner.cleanup()


@pytest.fixture
async def fetcher() -> AsyncIterator[ImageFetcher]:
    f = ImageFetcher(LIMIT, 0.3, allow_private=False, allowed_networks=["127.0.0.1/32"])
    try:
        yield f
    finally:
        await f.close()


async def test_good_image(server: Loopback, fetcher: ImageFetcher) -> None:
    got = await fetcher.fetch(f"{server.base}/img.png", "image")
    assert got.data == IMAGE
    assert got.info == ImageInfo("image/png", "png", 40, 30)


async def test_type_comes_from_the_bytes_not_the_header(server: Loopback, fetcher: ImageFetcher) -> None:
    got = await fetcher.fetch(f"{server.base}/mislabelled", "image")
    assert got.info.mime == "image/png"


async def test_three_redirects_are_followed(server: Loopback, fetcher: ImageFetcher) -> None:
    got = await fetcher.fetch(f"{server.base}/chain/3", "image")
    assert got.data == IMAGE
    assert server.paths == ["/chain/3", "/chain/2", "/chain/1", "/img.png"]


async def test_too_many_redirects(server: Loopback, fetcher: ImageFetcher) -> None:
    with pytest.raises(InvalidImageURL, match=r"^image redirected more than 3 times$"):
        await fetcher.fetch(f"{server.base}/chain/4", "image")
    assert server.paths == ["/chain/4", "/chain/3", "/chain/2", "/chain/1"]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("metadata", r"redirects to a blocked address \(link-local, cloud metadata\)"),
        ("private", r"redirects to a blocked address \(private network\)"),
        ("loopback-other", r"redirects to a blocked address \(loopback\)"),
        ("ftp", r"redirects to a URL with unsupported scheme 'ftp'"),
    ],
)
async def test_redirect_targets_are_checked_before_connecting(
    server: Loopback, fetcher: ImageFetcher, target: str, reason: str
) -> None:
    with pytest.raises(InvalidImageURL, match=f"^image {reason}"):
        await fetcher.fetch(f"{server.base}/to/{target}", "image")
    assert server.paths == [f"/to/{target}"]


async def test_redirect_without_location(server: Loopback, fetcher: ImageFetcher) -> None:
    with pytest.raises(InvalidImageURL, match="answered HTTP 302 without a Location"):
        await fetcher.fetch(f"{server.base}/no-location", "image")


async def test_declared_length_over_the_limit(server: Loopback, fetcher: ImageFetcher) -> None:
    with pytest.raises(InvalidImageURL, match=r"^image is over 64 KB$"):
        await fetcher.fetch(f"{server.base}/big-declared", "image")


async def test_streamed_body_over_the_limit(server: Loopback, fetcher: ImageFetcher) -> None:
    with pytest.raises(InvalidImageURL, match=r"^image is over 64 KB$"):
        await fetcher.fetch(f"{server.base}/big-streamed", "image")


async def test_size_limit_is_named_in_megabytes(server: Loopback) -> None:
    f = ImageFetcher(1024 * 1024, 2.0, allow_private=False, allowed_networks=["127.0.0.1/32"])
    try:
        with pytest.raises(InvalidImageURL, match=r"^image is over 1 MB$"):
            await f.fetch(f"{server.base}/big-streamed", "image")
        assert (await f.fetch(f"{server.base}/img.png", "image")).data == IMAGE
    finally:
        await f.close()


@pytest.mark.parametrize("path", ["/slow", "/slow-body"])
async def test_slower_than_the_timeout(server: Loopback, fetcher: ImageFetcher, path: str) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(InvalidImageURL, match=r"^image did not answer within 0.3 s$"):
        await fetcher.fetch(f"{server.base}{path}", "image")
    assert loop.time() - started < 2


@pytest.mark.parametrize("path", ["/html", "/empty"])
async def test_body_that_is_not_an_image(server: Loopback, fetcher: ImageFetcher, path: str) -> None:
    with pytest.raises(InvalidImageURL, match=r"^image did not return a PNG, JPEG, WEBP or GIF image$"):
        await fetcher.fetch(f"{server.base}{path}", "image")


async def test_http_error_status(server: Loopback, fetcher: ImageFetcher) -> None:
    with pytest.raises(InvalidImageURL, match=r"^image answered HTTP 404$"):
        await fetcher.fetch(f"{server.base}/missing.png", "image")


async def test_default_settings_refuse_loopback_without_connecting(server: Loopback) -> None:
    f = ImageFetcher(LIMIT, 2.0, allow_private=False)
    try:
        with pytest.raises(InvalidImageURL, match=r"blocked address \(loopback\)"):
            await f.fetch(f"{server.base}/img.png", "image")
    finally:
        await f.close()
    assert server.paths == []


async def test_allow_private_reaches_loopback(server: Loopback) -> None:
    f = ImageFetcher(LIMIT, 2.0, allow_private=True)
    try:
        assert (await f.fetch(f"{server.base}/img.png", "image")).data == IMAGE
    finally:
        await f.close()


async def test_names_go_through_the_guarded_resolver(server: Loopback) -> None:
    inner = FakeResolver({"images.test": ["127.0.0.1"], "other.test": ["127.0.0.2"]})
    f = ImageFetcher(LIMIT, 2.0, allow_private=False, allowed_networks=["127.0.0.1/32"], resolver=inner)
    try:
        got = await f.fetch(f"http://images.test:{server.port}/img.png", "image")
        assert got.data == IMAGE
        with pytest.raises(InvalidImageURL, match=r"blocked address \(loopback\)"):
            await f.fetch(f"http://other.test:{server.port}/img.png", "image")
    finally:
        await f.close()
    assert server.paths == ["/img.png"]


async def test_unreachable_port(fetcher: ImageFetcher) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(InvalidImageURL, match=r"^image could not be reached$"):
            await fetcher.fetch(f"http://127.0.0.1:{port}/img.png", "image")
