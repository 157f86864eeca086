"""S3-compatible object storage through boto3 (AWS S3, MinIO, R2, OSS, COS).

boto3 blocks, so its calls run in a worker thread; uploads with configured keys are signed by botocore
and sent from the event loop instead (`s3_upload.py`). Retries are the caller's (`images.rehost`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

import anyio.to_thread
import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from gateway.errors import StorageUnavailable
from gateway.settings import S3Settings
from gateway.storage.base import ObjectTooLarge, key_under, valid_key
from gateway.storage.s3_upload import Uploader, object_base

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = logging.getLogger(__name__)
T = TypeVar("T")
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


def make_client(settings: S3Settings) -> S3Client:
    """A client for the configured endpoint; its connection pool is shared by the worker threads."""
    config = Config(
        signature_version="s3v4",
        # Explicit either way: botocore would otherwise hash every upload, https included (no checksum).
        s3={
            "addressing_style": settings.addressing_style,
            "payload_signing_enabled": settings.payload_signed,
        },
        retries={"mode": "standard", "max_attempts": 1},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=32,
        # Newer boto3 adds CRC checksums by default, which several S3-compatible services reject.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    key_id = settings.access_key_id.get_secret_value() if settings.access_key_id else None
    secret = settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=config,
    )


class S3Store:
    """Objects in one bucket; URLs are `public_base_url/key` when set, else presigned GET URLs."""

    name = "s3"

    def __init__(self, settings: S3Settings, *, client: S3Client | None = None) -> None:
        self.key_prefix = settings.key_prefix
        self.bucket = settings.bucket
        self._public_base_url = settings.public_base_url.rstrip("/") if settings.public_base_url else None
        self._presign_ttl = settings.presign_ttl_seconds
        self._client = client if client is not None else make_client(settings)
        self._presigned_base: str | None = None
        self._uploader: Uploader | None = None
        if settings.access_key_id is not None and settings.secret_access_key is not None:
            # Static keys: uploads are signed here and sent from the event loop (see s3_upload.py).
            self._uploader = Uploader(settings, self._client, object_base(self._client, self.bucket))

    async def _call(self, action: str, fn: Callable[[], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(fn)
        except (BotoCoreError, ClientError) as exc:
            log.warning("s3 %s failed: %r", action, exc)
            raise StorageUnavailable(f"object storage {action} failed ({_error_name(exc)})") from exc

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        if self._uploader is not None:
            await self._uploader.put(key, data, content_type)
            return
        await self._call(
            "upload",
            lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type),
        )

    async def url(self, key: str) -> str:
        if self._public_base_url is not None:
            return f"{self._public_base_url}/{quote(key, safe='/')}"
        return await self._call(
            "presign",
            lambda: self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self._presign_ttl
            ),
        )

    async def read(self, key: str, max_bytes: int) -> bytes | None:
        if not valid_key(key):
            return None
        return await self._call("read", lambda: self._read(key, max_bytes))

    def _read(self, key: str, max_bytes: int) -> bytes | None:
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_name(exc) in _MISSING:
                return None  # not a failure of the store: the caller says what a missing object means
            raise
        body = answer["Body"]
        try:
            size = answer.get("ContentLength", 0)
            if size > max_bytes:
                raise ObjectTooLarge(key, size, max_bytes)
            data = body.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise ObjectTooLarge(key, len(data), max_bytes)
            return data
        finally:
            body.close()

    async def key_of(self, url: str) -> str | None:
        if self._public_base_url is not None:
            return key_under(url, self._public_base_url, self.key_prefix)
        if self._presigned_base is None:
            # Presigned URLs are the object's address plus a query: learn that address once, from a
            # URL presigned for a known key (a local computation, whatever the addressing style).
            self._presigned_base = await self._call("presign", lambda: object_base(self._client, self.bucket))
        return key_under(url, self._presigned_base, self.key_prefix)

    async def check(self) -> None:
        await self._call("bucket check", lambda: self._client.head_bucket(Bucket=self.bucket))

    async def close(self) -> None:
        if self._uploader is not None:
            await self._uploader.close()
        await anyio.to_thread.run_sync(self._client.close)


def _error_name(exc: BotoCoreError | ClientError) -> str:
    """The S3 error code (NoSuchBucket, AccessDenied…) or the exception type; never the endpoint URL."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__
