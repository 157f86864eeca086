"""The one downloader for client-supplied image URLs, safe against server-side request forgery (§5.3).

Addresses are checked after DNS resolution, inside the connector, so a name that resolves (or
re-resolves) to a private address is refused before any connection is made.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from gateway.errors import InvalidImageURL
from gateway.images.sniff import ImageInfo, sniff
from gateway.settings import LimitsSettings, SecuritySettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_REDIRECTS = 3
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 256 * 1024
_MB = 1024 * 1024
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_METADATA = ipaddress.IPv4Address("169.254.169.254")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Images are compressed already; asking for identity also keeps decompression bombs out.
_HEADERS = {"User-Agent": "image-gateway", "Accept": "image/*", "Accept-Encoding": "identity"}


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside an IPv4-mapped, 6to4 or NAT64 IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def blocked_reason(ip: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why a client URL may not reach `ip`, or None when it may. Addresses inside `allowed` pass."""
    if any(net.version == ip.version and ip in net for net in allowed):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return blocked_reason(inner, allowed)
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified address"
    if ip == _METADATA:
        return "link-local, cloud metadata"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared address space"
    if ip.is_private:
        return "private network"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not publicly routable"
    return None


class BlockedAddress(OSError):
    """A host resolved to an address that client URLs may not reach."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host} resolves to a blocked address ({reason})")
        self.host = host
        self.reason = reason


class GuardedResolver(AbstractResolver):
    """Resolves with `inner`, then refuses the host if any of its addresses is blocked."""

    def __init__(self, inner: AbstractResolver, allowed: Sequence[IPNetwork] = ()) -> None:
        self._inner = inner
        self._allowed = tuple(allowed)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            try:
                ip = ipaddress.ip_address(result["host"])
            except ValueError:
                raise BlockedAddress(host, "unparseable address") from None
            reason = blocked_reason(ip, self._allowed)
            if reason is not None:
                raise BlockedAddress(host, reason)
        return results

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class FetchedImage:
    data: bytes
    info: ImageInfo


def _describe_size(n: int) -> str:
    if n >= _MB:
        return f"{n / _MB:g} MB"
    if n >= 1024:
        return f"{n / 1024:g} KB"
    return f"{n} bytes"


def _find_blocked(exc: BaseException) -> BlockedAddress | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BlockedAddress):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _describe_client_error(exc: aiohttp.ClientError) -> str:
    """A reason for the client that names the failure without echoing internal details."""
    if isinstance(exc, aiohttp.InvalidURL):
        return "is not a valid URL"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "has a host name that could not be resolved"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "failed the TLS handshake"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "could not be reached"
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return "was cut off before the image was complete"
    return "could not be fetched"


class ImageFetcher:
    """Downloads images from client URLs with one owned `aiohttp.ClientSession` (created on first use)."""

    def __init__(
        self,
        max_bytes: int,
        timeout_seconds: float,
        allow_private: bool,
        allowed_networks: Sequence[str] = (),
        *,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds
        self.allow_private = allow_private
        self._allowed = tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks)
        self._inner_resolver = resolver
        self._resolver: AbstractResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            inner = self._inner_resolver or aiohttp.ThreadedResolver()
            self._resolver = inner if self.allow_private else GuardedResolver(inner, self._allowed)
            connector = aiohttp.TCPConnector(resolver=self._resolver, limit=100)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=_HEADERS,
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                cookie_jar=aiohttp.DummyCookieJar(),  # never carry one client's cookies to another's fetch
                trust_env=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    async def fetch(self, url: str, what: str) -> FetchedImage:
        """Download and check one image; every problem is an `InvalidImageURL` naming it."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await self._follow(url, what)
        except TimeoutError:
            raise InvalidImageURL(f"{what} did not answer within {self.timeout_seconds:g} s") from None

    async def _follow(self, url: str, what: str) -> FetchedImage:
        session = self._get_session()
        current = self._parse(url, what, "is")
        for hop in range(MAX_REDIRECTS + 1):
            verb = "redirects to" if hop else "points to"
            self._check_literal_host(current, what, verb)
            try:
                async with session.get(current, allow_redirects=False) as resp:
                    if resp.status in _REDIRECT_STATUSES:
                        current = self._redirect_target(current, resp, what)
                        continue
                    if not 200 <= resp.status < 300:
                        raise InvalidImageURL(f"{what} answered HTTP {resp.status}")
                    data = await self._read_body(resp, what)
            except TimeoutError:
                raise  # aiohttp's own timeouts are ClientErrors too; report them as timeouts
            except aiohttp.ClientError as exc:
                blocked = _find_blocked(exc)
                if blocked is not None:
                    raise InvalidImageURL(f"{what} {verb} a blocked address ({blocked.reason})") from None
                raise InvalidImageURL(f"{what} {_describe_client_error(exc)}") from None
            info = sniff(data)
            if info is None:
                raise InvalidImageURL(f"{what} did not return a PNG, JPEG, WEBP or GIF image")
            return FetchedImage(data, info)
        raise InvalidImageURL(f"{what} redirected more than {MAX_REDIRECTS} times")

    @staticmethod
    def _parse(url: str | URL, what: str, verb: str) -> URL:
        try:
            parsed = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError):
            raise InvalidImageURL(f"{what} {verb} not a valid URL") from None
        if parsed.scheme not in ("http", "https"):
            scheme = parsed.scheme or "none"
            raise InvalidImageURL(
                f"{what} {verb} a URL with unsupported scheme {scheme!r} (only http and https)"
            )
        if not parsed.raw_host:
            raise InvalidImageURL(f"{what} {verb} a URL without a host")
        return parsed

    def _redirect_target(self, current: URL, resp: aiohttp.ClientResponse, what: str) -> URL:
        location = resp.headers.get("Location")
        if not location:
            raise InvalidImageURL(f"{what} answered HTTP {resp.status} without a Location")
        try:
            target = current.join(URL(location))
        except (ValueError, TypeError):
            raise InvalidImageURL(f"{what} redirects to an invalid URL") from None
        return self._parse(target, what, "redirects to")

    def _check_literal_host(self, url: URL, what: str, verb: str) -> None:
        """Check an IP written in the URL: the connector skips the resolver for those."""
        host = url.raw_host or ""
        # The same test aiohttp uses to decide a host is an address rather than a name.
        if ":" not in host and not host.replace(".", "").isdigit():
            return
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise InvalidImageURL(f"{what} {verb} a malformed IP address") from None
        if self.allow_private:
            return
        reason = blocked_reason(ip, self._allowed)
        if reason is not None:
            raise InvalidImageURL(f"{what} {verb} a blocked address ({reason})")

    async def _read_body(self, resp: aiohttp.ClientResponse, what: str) -> bytes:
        limit = self.max_bytes
        too_large = f"{what} is over {_describe_size(limit)}"
        if resp.content_length is not None and resp.content_length > limit:
            raise InvalidImageURL(too_large)
        chunks: list[bytes] = []
        total = 0
        while True:
            # Never ask for more than one byte past the limit.
            chunk = await resp.content.read(min(_CHUNK, limit + 1 - total))
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise InvalidImageURL(too_large)
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def from_settings(limits: LimitsSettings, security: SecuritySettings) -> ImageFetcher:
    return ImageFetcher(
        max_bytes=int(limits.max_image_download_mb * _MB),
        timeout_seconds=limits.image_fetch_timeout_seconds,
        allow_private=security.allow_private_image_urls,
        allowed_networks=security.allowed_image_url_networks,
    )
