"""Start the gateway as a real uvicorn process (`python -m gateway serve`) for end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml

from tests.fakes.server import free_port

ADMIN_TOKEN = "admin-test-token"


class GatewayProcess:
    def __init__(self, tmp: Path, config: dict[str, Any], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        config = dict(config)
        self.tmp = tmp
        server = {
            "host": "127.0.0.1",
            "port": self.port,
            "sse_keepalive_seconds": 10,
            **config.pop("server", {}),
        }
        config = {
            "server": server,
            "database": {"url": f"sqlite+aiosqlite:///{tmp}/gateway.db"},
            "admin": {"token": ADMIN_TOKEN},
            "storage": {"backend": "none"},
            "logging": {"level": "WARNING"},
            **config,
        }
        self.config_path = tmp / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / "gateway.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "gateway", *args, "--config", str(self.config_path)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode != 0:
            raise RuntimeError(f"gateway {' '.join(args)} failed: {out.stderr}")
        return out.stdout

    def create_token(self, name: str = "test", **fields: str) -> str:
        args = ["tokens", "create", "--name", name, "--json"]
        for name_, value in fields.items():
            args += [f"--{name_.replace('_', '-')}", value]
        created: str = json.loads(self.cli(*args))["key"]
        return created

    def start(self) -> GatewayProcess:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--config", str(self.config_path)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)
