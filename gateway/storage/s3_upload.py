"""S3 uploads signed by botocore and sent by aiohttp, on the event loop (§5.4).

boto3's `put_object` in a worker thread costs, per 16 MB image, its per-call machinery and a send in 16 KB
pieces that each take the GIL back from the event loop. Here the request is signed with botocore's own
SigV4 signer (the same one `put_object` uses, with the client's configuration) and the body goes out in
one write. The object's address comes from boto3 itself (a presigned URL for a probe key, a local
computation), so the endpoint, region and addressing style are the client's.

Used when the keys are in the configuration: a credential chain (environment, instance role) may refresh
over the network, which must not happen on the event loop; then `S3Store` keeps boto3 in a thread.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING
from urllib.parse import quote

import aiohttp
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from yarl import URL

from gateway.errors import StorageUnavailable
from gateway.settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = logging.getLogger(__name__)
_PROBE_KEY = "probe"
_ERROR_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)  # as the boto3 client's
_ERROR_BYTES = 64 * 1024


def object_base(client: S3Client, bucket: str) -> str:
    """The URL of the bucket's objects, without the trailing slash, as boto3 addresses them."""
    probe = client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": _PROBE_KEY})
    return probe.split("?", 1)[0].removesuffix("/" + _PROBE_KEY)


class Uploader:
    """PUT Object requests for one bucket; one aiohttp session, made on first use, closed with `close`."""

    def __init__(self, settings: S3Settings, client: S3Client, base: str) -> None:
        assert settings.access_key_id is not None and settings.secret_access_key is not None
        credentials = Credentials(
            settings.access_key_id.get_secret_value(), settings.secret_access_key.get_secret_value()
        )
        self._signer = S3SigV4Auth(credentials, "s3", client.meta.region_name or "us-east-1")
        self._config = client.meta.config  # payload signing as configured (`sign_payload`)
        self._base = base
        self._session: aiohttp.ClientSession | None = None

    def signed_headers(self, url: str, data: bytes, content_type: str) -> dict[str, str]:
        request = AWSRequest(method="PUT", url=url, headers={"Content-Type": content_type}, data=data)
        request.context["client_config"] = self._config
        self._signer.add_auth(request)
        return dict(request.headers.items())

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        url = f"{self._base}/{quote(key, safe='/~')}"
        headers = self.signed_headers(url, data, content_type)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT, auto_decompress=False)
        failure: str | None = None
        try:
            # encoded=True: the path goes out exactly as it was signed.
            async with self._session.put(URL(url, encoded=True), data=data, headers=headers) as resp:
                if resp.status != 200:
                    failure = _error_name(resp.status, await resp.content.read(_ERROR_BYTES))
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = _transport_error_name(exc)
        if failure is not None:
            log.warning("s3 upload of %s failed: %s", key, failure)
            raise StorageUnavailable(f"object storage upload failed ({failure})")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _transport_error_name(exc: BaseException) -> str:
    """Named as botocore names them, so an error reads the same whichever path made the upload."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "ConnectTimeoutError"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "EndpointConnectionError"
    if isinstance(exc, TimeoutError):
        return "ReadTimeoutError"
    return type(exc).__name__


def _error_name(status: int, body: bytes) -> str:
    """The S3 error code of an error answer (NoSuchBucket, AccessDenied…), else its status."""
    match = _ERROR_CODE.search(body)
    return match.group(1).decode() if match else f"HTTP {status}"
