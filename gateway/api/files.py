"""GET /files/{key}: images kept by the `local` storage backend."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import FileResponse, Response

from gateway.api.deps import RuntimeDep
from gateway.errors import NotFound
from gateway.images.sniff import sniff
from gateway.storage.local import LocalStore

router = APIRouter()


@router.get("/files/{key:path}")
async def get_file(key: str, rt: RuntimeDep) -> Response:
    store = rt.store
    path = store.open_path(key) if isinstance(store, LocalStore) else None
    if path is None:
        raise NotFound("No such file.", code="file_not_found")
    with path.open("rb") as f:
        info = sniff(f.read(64))
    media_type = info.mime if info else "application/octet-stream"
    return FileResponse(
        path, media_type=media_type, headers={"Cache-Control": "public, max-age=31536000, immutable"}
    )
