"""The console's static files and page templates, read once from the package.

Every static URL carries `build`, a hash of all the files, so a browser may keep them for a year: a new
release has new URLs. Each file is also kept gzip-compressed, with an ETag.
"""

from __future__ import annotations

import gzip
import hashlib
import html
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from string import Template

TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: str
    etag: str


@dataclass(frozen=True)
class Assets:
    build: str
    files: dict[str, Asset]
    templates: dict[str, Template]


@cache
def assets() -> Assets:
    """Read the package's files once (they never change while the process runs)."""
    root = files("gateway.console")
    found: dict[str, Asset] = {}
    digest = hashlib.sha256()
    for entry in sorted((root / "static").iterdir(), key=lambda e: e.name):
        suffix = "." + entry.name.rpartition(".")[2]
        if not entry.is_file() or suffix not in TYPES:
            continue
        body = entry.read_bytes()
        tag = hashlib.sha256(body).hexdigest()[:16]
        digest.update(f"{entry.name}:{tag};".encode())
        found[entry.name] = Asset(body, gzip.compress(body, 9, mtime=0), TYPES[suffix], f'"{tag}"')
    templates = {
        name: Template((root / "templates" / f"{name}.html").read_text(encoding="utf-8"))
        for name in ("page", "login")
    }
    return Assets(digest.hexdigest()[:12], found, templates)


def render(template: str, **values: str) -> str:
    """Fill a template; every value is HTML-escaped."""
    return assets().templates[template].substitute({k: html.escape(v) for k, v in values.items()})
