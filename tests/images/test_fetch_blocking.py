import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.errors import InvalidImageURL
from gateway.images.fetch import BlockedAddress, GuardedResolver, ImageFetcher, blocked_reason, from_settings
from gateway.settings import LimitsSettings, SecuritySettings


class FakeResolver(AbstractResolver):
    """Answers from a table; records every name it was asked about."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"unknown host {host}")
        return [
            ResolveResult(
                hostname=host,
                host=ip,
                port=port,
                family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for ip in self.table[host]
        ]

    async def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.3.4.5", "loopback"),
        ("10.0.0.1", "private network"),
        ("172.16.5.4", "private network"),
        ("172.31.255.255", "private network"),
        ("192.168.1.1", "private network"),
        ("169.254.169.254", "link-local, cloud metadata"),
        ("169.254.1.2", "link-local"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "private network"),
        ("fc00::1", "private network"),
        ("::ffff:10.0.0.1", "private network"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local, cloud metadata"),
        ("2002:a00:1::", "private network"),  # 6to4 wrapping 10.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local, cloud metadata"),  # NAT64 wrapping 169.254.169.254
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified address"),
        ("::", "unspecified address"),
        ("100.64.0.1", "shared address space"),
        ("100.127.255.254", "shared address space"),
    ],
)
def test_blocked_addresses(ip: str, reason: str) -> None:
    assert blocked_reason(ipaddress.ip_address(ip)) == reason


@pytest.mark.parametrize(
    "ip", ["240.0.0.1", "255.255.255.255", "192.0.2.10", "198.18.0.1", "2001:db8::1", "::10.0.0.1", "100::1"]
)
def test_special_purpose_ranges_are_blocked(ip: str) -> None:
    # The exact reason follows the Python version's registry tables; only "blocked" matters.
    assert blocked_reason(ipaddress.ip_address(ip)) is not None


@pytest.mark.parametrize(
    "ip", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(ip: str) -> None:
    assert blocked_reason(ipaddress.ip_address(ip)) is None


def test_allowed_networks_open_only_their_range() -> None:
    allowed = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.20.0.0/16")]
    assert blocked_reason(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert blocked_reason(ipaddress.ip_address("::ffff:127.0.0.1"), allowed) is None
    assert blocked_reason(ipaddress.ip_address("10.20.3.4"), allowed) is None
    assert blocked_reason(ipaddress.ip_address("127.0.0.2"), allowed) == "loopback"
    assert blocked_reason(ipaddress.ip_address("10.21.0.1"), allowed) == "private network"
    assert blocked_reason(ipaddress.ip_address("::1"), allowed) == "loopback"


async def test_resolver_refuses_a_name_that_resolves_privately() -> None:
    inner = FakeResolver({"internal.test": ["10.0.0.7"], "mixed.test": ["8.8.8.8", "192.168.0.2"]})
    resolver = GuardedResolver(inner)
    with pytest.raises(BlockedAddress) as err:
        await resolver.resolve("internal.test", 80)
    assert err.value.reason == "private network"
    with pytest.raises(BlockedAddress):
        await resolver.resolve("mixed.test", 443)
    await resolver.close()
    assert inner.closed


async def test_resolver_passes_public_answers_through() -> None:
    inner = FakeResolver({"cdn.test": ["8.8.8.8", "2606:4700:4700::1111"]})
    results = await GuardedResolver(inner).resolve("cdn.test", 443)
    assert [r["host"] for r in results] == ["8.8.8.8", "2606:4700:4700::1111"]


async def test_fetcher_refuses_private_resolution_before_connecting() -> None:
    # No server listens anywhere: a connection attempt would fail differently ("could not be reached").
    inner = FakeResolver({"internal.test": ["10.0.0.1"], "meta.test": ["169.254.169.254"]})
    fetcher = ImageFetcher(1024 * 1024, 2.0, allow_private=False, resolver=inner)
    try:
        with pytest.raises(InvalidImageURL, match=r"^image points to a blocked address \(private network\)$"):
            await fetcher.fetch("http://internal.test/cat.png", "image")
        with pytest.raises(InvalidImageURL, match="cloud metadata"):
            await fetcher.fetch("http://meta.test/latest/meta-data/", "image")
    finally:
        await fetcher.close()
    assert inner.asked == ["internal.test", "meta.test"]
    assert inner.closed


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9/a.png", "points to a blocked address (loopback)"),
        ("http://[::1]:9/a.png", "points to a blocked address (loopback)"),
        ("http://[::ffff:10.0.0.1]/a.png", "points to a blocked address (private network)"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "points to a blocked address (link-local, cloud metadata)",
        ),
        ("http://0.0.0.0:9/", "points to a blocked address (unspecified address)"),
        ("http://2130706433/", "points to a malformed IP address"),
        ("http://127.1/", "points to a malformed IP address"),
        ("http://0177.0.0.1/", "points to a malformed IP address"),
        ("ftp://example.com/a.png", "is a URL with unsupported scheme 'ftp' (only http and https)"),
        ("file:///etc/passwd", "is a URL with unsupported scheme 'file' (only http and https)"),
        ("gopher://127.0.0.1:6379/_INFO", "is a URL with unsupported scheme 'gopher'"),
        ("/relative/path.png", "is a URL with unsupported scheme 'none'"),
        ("http:///nohost.png", "is a URL without a host"),
        ("http://[::1/", "is not a valid URL"),
    ],
)
async def test_literal_and_malformed_urls_are_refused_without_resolving(url: str, reason: str) -> None:
    inner = FakeResolver({})
    fetcher = ImageFetcher(1024, 1.0, allow_private=False, resolver=inner)
    try:
        with pytest.raises(InvalidImageURL) as err:
            await fetcher.fetch(url, "image")
    finally:
        await fetcher.close()
    assert err.value.message.startswith(f"image {reason}")
    assert err.value.code == "invalid_image_url"
    assert err.value.status == 400
    assert inner.asked == []


async def test_default_fetcher_refuses_localhost_by_name() -> None:
    # The real system resolver answers "localhost" from the hosts file; the answer is loopback.
    fetcher = ImageFetcher(1024, 2.0, allow_private=False)
    try:
        with pytest.raises(InvalidImageURL, match=r"blocked address \(loopback\)"):
            await fetcher.fetch("http://localhost:9/a.png", "image")
    finally:
        await fetcher.close()


def test_from_settings() -> None:
    fetcher = from_settings(
        LimitsSettings(max_image_download_mb=2.5, image_fetch_timeout_seconds=7),
        SecuritySettings(allowed_image_url_networks=["10.1.0.0/16"]),
    )
    assert fetcher.max_bytes == 2_621_440
    assert fetcher.timeout_seconds == 7
    assert fetcher.allow_private is False


def test_allowed_networks_setting_is_validated() -> None:
    with pytest.raises(ValueError, match="not an IP network"):
        SecuritySettings(allowed_image_url_networks=["10.0.0.0/33"])
