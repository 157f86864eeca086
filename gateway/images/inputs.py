"""Client-supplied input images: a data URL is decoded, an http(s) URL fetched by the SSRF-safe fetcher."""

from __future__ import annotations

from gateway.errors import InvalidImageURL
from gateway.images.fetch import FetchedImage, ImageFetcher
from gateway.images.sniff import parse_data_url, require_image


def check_reference(url: object, what: str) -> str:
    """An image reference must be an http(s) or `data:` URL; returns it."""
    if not isinstance(url, str) or not url:
        raise InvalidImageURL(f"{what} must be an https URL or a data: URL")
    lowered = url[:8].lower()
    if not (lowered.startswith(("http://", "https://", "data:"))):
        raise InvalidImageURL(f"{what} must be an https URL or a data: URL")
    return url


def decode_data_url(url: str, what: str) -> FetchedImage:
    """Decode and sniff a `data:` URL (InvalidImage when it is not base64 of an image)."""
    data = parse_data_url(url, what)
    return FetchedImage(data=data, info=require_image(data, what))


async def load_image(fetcher: ImageFetcher, url: str, what: str) -> FetchedImage:
    check_reference(url, what)
    if url[:5].lower() == "data:":
        return decode_data_url(url, what)
    return await fetcher.fetch(url, what)
