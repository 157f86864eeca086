"""Builds the configured `ObjectStore`: one per process, made in the application lifespan."""

from __future__ import annotations

from gateway.settings import StorageSettings
from gateway.storage.base import ObjectStore
from gateway.storage.local import LocalStore
from gateway.storage.s3 import S3Store


def build_store(settings: StorageSettings, public_base_url: str) -> ObjectStore | None:
    """The store for `storage.backend`, or None for `none`. `public_base_url` serves local files."""
    if settings.backend == "s3":
        return S3Store(settings.s3)
    if settings.backend == "local":
        return LocalStore(settings.local, public_base_url)
    return None
