"""What an upload's signature covers (`storage.s3.sign_payload`), seen by the S3 endpoint itself: the
SHA-256 of the body over plain http unless told `never`; over https `UNSIGNED-PAYLOAD` unless `always`."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
from collections.abc import AsyncIterator

import botocore.auth
import pytest
from pydantic import SecretStr

from gateway.settings import S3Settings
from gateway.storage.s3 import S3Store, make_client
from tests.images.samples import png


class Recorder:
    """An S3 endpoint that keeps each request's headers and body, and answers 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line, *fields = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields if f)}
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((line, headers, body))
        writer.write(b'HTTP/1.1 200 OK\r\nETag: "x"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
        await writer.drain()
        writer.close()


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    server = await asyncio.start_server(rec.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield rec, f"http://127.0.0.1:{port}"


def settings(endpoint: str | None, sign_payload: str = "auto") -> S3Settings:
    return S3Settings.model_validate(
        {"endpoint_url": endpoint, "region": "us-east-1", "bucket": "b", "access_key_id": SecretStr("k"),
         "secret_access_key": SecretStr("s"), "addressing_style": "path", "sign_payload": sign_payload}
    )  # fmt: skip


@pytest.mark.parametrize(("sign_payload", "hashed"), [("auto", True), ("always", True), ("never", False)])
async def test_the_upload_carries_the_payload_hash_it_is_told_to(
    recorder: tuple[Recorder, str], sign_payload: str, hashed: bool
) -> None:
    rec, endpoint = recorder
    store = S3Store(settings(endpoint, sign_payload))
    image = png((9, 9))
    try:
        await store.put("a/b.png", image, "image/png")
    finally:
        await store.close()
    ((line, headers, body),) = rec.requests
    assert line.startswith("PUT /b/a/b.png ") and body == image
    expected = hashlib.sha256(image).hexdigest() if hashed else "UNSIGNED-PAYLOAD"
    assert headers["x-amz-content-sha256"] == expected
    assert "x-amz-content-sha256" in headers["authorization"]  # signed, whatever its value


@pytest.mark.parametrize(
    ("endpoint", "sign_payload", "signed"),
    [
        ("http://minio:9000", "auto", True),
        ("HTTPS://r2.example", "auto", False),
        (None, "auto", False),  # AWS S3 itself, over https
        ("https://r2.example", "always", True),
        ("http://minio:9000", "never", False),
    ],
)
def test_auto_hashes_only_over_plain_http(endpoint: str | None, sign_payload: str, signed: bool) -> None:
    assert settings(endpoint, sign_payload).payload_signed is signed


@pytest.mark.parametrize("sign_payload", ["auto", "never"])
async def test_the_upload_is_signed_as_boto3_signs_put_object(
    recorder: tuple[Recorder, str], sign_payload: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event-loop upload and boto3's own `put_object`, at the same instant: the same signature."""
    rec, endpoint = recorder
    now = datetime.datetime(2026, 11, 29, 6, 0, 0)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now)
    store = S3Store(settings(endpoint, sign_payload))
    image = png((5, 5))
    try:
        await store.put("k/x.png", image, "image/png")
        client = make_client(settings(endpoint, sign_payload))
        await asyncio.to_thread(
            client.put_object, Bucket="b", Key="k/x.png", Body=image, ContentType="image/png"
        )
    finally:
        await store.close()
    ours, boto3s = (headers for _, headers, _ in rec.requests)
    for name in ("authorization", "x-amz-content-sha256", "x-amz-date", "content-type", "host"):
        assert ours[name] == boto3s[name], name
