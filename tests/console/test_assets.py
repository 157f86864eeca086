"""The console's static files: served with long-lived cache headers under a content hash, revalidated by
ETag, gzip-compressed; every module a page loads exists; no inline script (a strict CSP holds); no code
from elsewhere; and all of them are package data, so a wheel carries them."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.api.console import PAGES as PAGE_MODULES
from gateway.console.assets import assets
from tests.billing.support import running, settings
from tests.console.support import PAGES, session

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "gateway" / "console"
STATIC_URL = re.compile(r'(?:href|src)="(/console/static/([0-9a-f]+)/([\w.-]+))"')
IMPORT = re.compile(r'^import .* from "\./([\w.-]+)";$', re.M)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with running(settings(tmp_path_factory.mktemp("assets") / "gateway.db")) as c:
        session(c, "adm")
        yield c


def test_each_page_loads_a_few_hashed_files_cached_for_a_year(client: TestClient) -> None:
    for page in PAGES:
        html = client.get(page).text
        urls = STATIC_URL.findall(html)
        assert 3 <= len(urls) <= 9, urls
        for url, build, _ in urls:
            assert build == assets().build
            resp = client.get(url)
            assert resp.status_code == 200, url
            assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert resp.headers["etag"]
            assert resp.headers["x-content-type-options"] == "nosniff"


def test_etag_gzip_and_a_stale_build(client: TestClient) -> None:
    url = f"/console/static/{assets().build}/app.js"
    first = client.get(url, headers={"accept-encoding": "gzip"})
    assert first.headers["content-encoding"] == "gzip"
    assert first.headers["content-type"].startswith("text/javascript")
    assert first.content == (CONSOLE / "static" / "app.js").read_bytes()  # decoded by the client
    again = client.get(url, headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    stale = client.get("/console/static/0123456789ab/app.js")  # a page of another release
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
    assert client.get(f"/console/static/{assets().build}/nope.js").status_code == 404
    assert client.get(f"/console/static/{assets().build}/..%2Fsession.py").status_code == 404


def test_every_module_a_page_imports_exists_and_is_preloaded() -> None:
    static = {p.name for p in (CONSOLE / "static").iterdir()}
    template = (CONSOLE / "templates" / "page.html").read_text()
    preloaded = set(re.findall(r'rel="modulepreload" href="/console/static/\$build/([\w.$-]+)"', template))
    for page in PAGE_MODULES:
        module = f"{page}.js"
        assert module in static, module
        wanted = set(IMPORT.findall((CONSOLE / "static" / module).read_text())) | {"app.js"}
        for name in set(wanted):
            wanted |= set(IMPORT.findall((CONSOLE / "static" / name).read_text()))
        assert wanted <= static
        # every module but the entry point is preloaded: one round trip after the HTML
        assert wanted - {"app.js"} <= {p.replace("$page", page) for p in preloaded}, page


def test_no_inline_script_style_or_handlers_and_no_outside_code() -> None:
    for path in (CONSOLE / "templates").iterdir():
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path.name
        assert not re.search(r"\sstyle=|\son[a-z]+=", text), path.name
    for path in (CONSOLE / "static").iterdir():
        text = path.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
        assert "innerHTML" not in text and "eval(" not in text, path.name


def test_static_files_and_templates_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["gateway.console"]
    for folder in ("static", "templates"):
        for path in (CONSOLE / folder).iterdir():
            assert path.is_file(), f"{path}: package-data globs do not recurse into folders"
            relative = f"{folder}/{path.name}"
            assert any(fnmatch.fnmatch(relative, g) for g in globs), relative
