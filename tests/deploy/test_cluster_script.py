"""`scripts/cluster` starts the multi-node topology without Docker: migrations once, two nodes sharing
PostgreSQL, Redis and a local S3 endpoint. A token made on one node works on the other, and an image
generated through the second node is stored in the shared bucket."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy.engine import make_url

from tests.db.conftest import PG_URL, create_pg_database, drop_pg_database, requires_postgres
from tests.fakes.server import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = requires_postgres


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            pytest.fail(f"scripts/cluster exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} never became ready:\n{log.read_text()}")


def test_two_nodes_share_database_and_storage(tmp_path: Path) -> None:
    assert PG_URL
    db_url = create_pg_database()
    base, s3 = free_port(), free_port()
    while base + 1 == s3:
        s3 = free_port()
    env = {
        **os.environ,
        "PG_URL": make_url(db_url).render_as_string(hide_password=False),
        "RUN_DIR": str(tmp_path),
        "BASE_PORT": str(base),
        "S3_PORT": str(s3),
        "ADMIN_TOKEN": "cluster-test-admin",
    }
    log = tmp_path / "cluster.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "cluster")], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        nodes = [f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"]
        for node in nodes:
            _wait_ready(node, proc, log)
        admin = {"Authorization": "Bearer cluster-test-admin"}
        made = httpx.post(f"{nodes[0]}/admin/tokens", json={"name": "t"}, headers=admin)
        assert made.status_code == 201, made.text
        answer = httpx.post(
            f"{nodes[1]}/v1/images/generations",
            json={"model": "mock-image", "prompt": "a red square", "response_format": "url"},
            headers={"Authorization": f"Bearer {made.json()['key']}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        url = answer.json()["data"][0]["url"]
        assert url.startswith(f"http://127.0.0.1:{s3}/images/")
        assert httpx.get(url).content.startswith(b"\x89PNG")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        drop_pg_database(db_url)
