"""A real S3 endpoint for tests: moto's server mode on a loopback port, reached over HTTP with boto3.

Use `running_s3_server()` from a session-scoped fixture; `S3Endpoint.settings()` builds the gateway's
`S3Settings` for it and `S3Endpoint.client()` a plain boto3 client for arranging and inspecting.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from moto.server import ThreadedMotoServer
from pydantic import SecretStr

from gateway.settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

FAKE_KEY_ID = "testing-key-id"
FAKE_SECRET = "testing-secret"
REGION = "us-east-1"

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


@dataclass(frozen=True)
class S3Endpoint:
    url: str

    def client(self) -> S3Client:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=FAKE_KEY_ID,
            aws_secret_access_key=FAKE_SECRET,
        )

    def create_bucket(self, *, public_read: bool = False) -> str:
        """A fresh bucket; `public_read` lets anyone GET its objects (as a CDN origin would)."""
        name = f"test-{uuid.uuid4().hex[:16]}"
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
            if public_read:
                policy = {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": "*",
                            "Action": "s3:GetObject",
                            "Resource": f"arn:aws:s3:::{name}/*",
                        }
                    ],
                }
                client.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
        finally:
            client.close()
        return name

    def settings(self, bucket: str, **overrides: Any) -> S3Settings:
        values: dict[str, Any] = {
            "endpoint_url": self.url,
            "region": REGION,
            "bucket": bucket,
            "access_key_id": SecretStr(FAKE_KEY_ID),
            "secret_access_key": SecretStr(FAKE_SECRET),
            "addressing_style": "path",
        }
        values.update(overrides)
        return S3Settings(**values)


@contextmanager
def running_s3_server() -> Iterator[S3Endpoint]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Endpoint(f"http://{host}:{port}")
    finally:
        server.stop()
        # stop() shuts the loop down but leaves the listening socket open.
        wsgi = getattr(server, "_server", None)
        if wsgi is not None:
            wsgi.server_close()
