"""Thought signatures across nodes (§3.4): one node stores a Gemini answer's image in S3 with its signature;
another node, sharing only the bucket, resolves the image's presigned URL from a later turn and finds the
signature beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import pytest

from gateway.domain import DecodedImage
from gateway.images.answer_images import show_answer_images
from gateway.images.fetch import ImageFetcher
from gateway.images.resolver import InputResolver
from gateway.storage.s3 import S3Store
from tests.images.samples import png
from tests.s3server import S3Endpoint

SIGNATURE = "Q2lnbmF0dXJlIG9mIHRoZSBpbWFnZQ==" * 40  # larger than S3's 2 KB of user metadata


class NoFetch:
    max_bytes = 1 << 20

    async def fetch(self, url: str, what: str) -> None:
        raise AssertionError(f"{url} was fetched: a URL of our own storage must be read from the store")


@pytest.fixture
async def nodes(s3_endpoint: S3Endpoint) -> AsyncIterator[tuple[S3Store, S3Store]]:
    bucket = s3_endpoint.create_bucket()
    a = S3Store(s3_endpoint.settings(bucket, key_prefix="gw/"))
    b = S3Store(s3_endpoint.settings(bucket, key_prefix="gw/"))
    yield a, b
    await a.close()
    await b.close()


async def test_a_signature_stored_by_one_node_is_read_by_another(nodes: tuple[S3Store, S3Store]) -> None:
    a, b = nodes
    image = png((7, 7))
    (shown,) = await show_answer_images(a, [DecodedImage(image, "image/png", SIGNATURE)], 2, keep_data=False)
    assert "X-Amz-Signature=" in shown.url  # a presigned URL, as the client got it
    resolved = await InputResolver(b, cast(ImageFetcher, NoFetch()))(shown.url, "messages[1]")
    assert (resolved.data, resolved.mime, resolved.thought_signature) == (image, "image/png", SIGNATURE)


async def test_an_image_stored_without_signature_reads_back_without_one(
    nodes: tuple[S3Store, S3Store],
) -> None:
    a, b = nodes
    (shown,) = await show_answer_images(a, [DecodedImage(png((3, 3)))], 2, keep_data=False)
    resolved = await InputResolver(b, cast(ImageFetcher, NoFetch()))(shown.url, "x")
    assert resolved.thought_signature is None
