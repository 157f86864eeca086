"""The command line (§7, §8.1, §8.2) as an operator runs it: `python -m gateway …` in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment without any GATEWAY_* setting, so only the test's config counts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(extra)
    return env


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        env=env if env is not None else _env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    out = run(cwd, *args, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def write_config(tmp_path: Path, config: dict[str, Any], name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/db/gateway.db"},
            "storage": {"backend": "none"},
            "groups": {"default": {"ratio": 1.0}, "economy": {"ratio": 0.5}},
            "channels": [{"name": "m", "kind": "mock", "models": ["mock-chat"]}],
        },
    )


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    return names


def token_rows(db: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM tokens")}
    conn.close()
    return rows


def test_migrate_up_and_down(tmp_path: Path, config: Path) -> None:
    db = tmp_path / "db" / "gateway.db"
    assert "head" in ok(tmp_path, "migrate", "--config", str(config))
    assert {"tokens", "usage_records", "alembic_version"} <= tables(db)

    assert "base" in ok(tmp_path, "migrate", "--downgrade", "base", "--config", str(config))
    assert not {"tokens", "usage_records"} & tables(db)

    ok(tmp_path, "migrate", "--config", str(config))
    assert {"tokens", "usage_records"} <= tables(db)


def test_tokens_create_list_disable(tmp_path: Path, config: Path) -> None:
    db = tmp_path / "db" / "gateway.db"
    # No `migrate` first: the token commands bring a fresh database up to date themselves.
    out = ok(
        tmp_path,
        "tokens",
        "create",
        "--name",
        "x",
        "--group",
        "default",
        "--quota-usd",
        "5",
        "--json",
        "--config",
        str(config),
    )
    created = json.loads(out)
    key = created["key"]
    assert key.startswith("sk-") and len(key) == 51
    assert (created["name"], created["group"], created["status"]) == ("x", "default", "active")
    assert created["quota_usd"] == 5.0 and created["remaining_usd"] == 5.0 and created["used_usd"] == 0.0

    other = json.loads(
        ok(
            tmp_path,
            "tokens",
            "create",
            "--name",
            "eco",
            "--group",
            "economy",
            "--models",
            "mock-chat, other",
            "--allowed-groups",
            "default",
            "--json",
            "--config",
            str(config),
        )
    )
    assert other["group"] == "economy" and other["quota_usd"] is None
    assert other["models"] == ["mock-chat", "other"] and other["allowed_groups"] == ["default"]

    rows = token_rows(db)
    assert rows[created["id"]]["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert all(key not in str(v) for v in rows[created["id"]].values())

    listed = [
        json.loads(line)
        for line in ok(tmp_path, "tokens", "list", "--json", "--config", str(config)).splitlines()
    ]
    assert {t["id"]: t["name"] for t in listed} == {created["id"]: "x", other["id"]: "eco"}
    assert all("key" not in t for t in listed)

    assert created["id"] in ok(tmp_path, "tokens", "disable", created["id"], "--config", str(config))
    rows = token_rows(db)
    assert rows[created["id"]]["status"] == "disabled"
    assert rows[other["id"]]["status"] == "active"
    listed = [
        json.loads(line)
        for line in ok(tmp_path, "tokens", "list", "--json", "--config", str(config)).splitlines()
    ]
    assert {t["id"]: t["status"] for t in listed} == {created["id"]: "disabled", other["id"]: "active"}

    missing = run(tmp_path, "tokens", "disable", "tok_nope", "--config", str(config))
    assert missing.returncode != 0 and "tok_nope" in missing.stderr


def test_tokens_create_refuses_an_undeclared_group(tmp_path: Path, config: Path) -> None:
    out = run(tmp_path, "tokens", "create", "--name", "x", "--group", "gold", "--config", str(config))
    assert out.returncode != 0
    assert "gold" in out.stderr and "Traceback" not in out.stderr
    assert token_rows(tmp_path / "db" / "gateway.db") == {}


def test_config_from_gateway_config_env(tmp_path: Path, config: Path) -> None:
    """Without --config every command reads GATEWAY_CONFIG; GATEWAY_* variables overlay the file."""
    env = _env(GATEWAY_CONFIG=str(config))
    key = json.loads(ok(tmp_path, "tokens", "create", "--name", "envy", "--json", env=env))["key"]
    assert key.startswith("sk-")
    assert (tmp_path / "db" / "gateway.db").is_file()

    other_db = tmp_path / "elsewhere.db"
    env["GATEWAY_DATABASE__URL"] = f"sqlite+aiosqlite:///{other_db}"
    assert ok(tmp_path, "tokens", "list", "--json", env=env).strip() == ""
    assert other_db.is_file()


def _fails_with(tmp_path: Path, config: Path, *needles: str, env: dict[str, str] | None = None) -> str:
    out = run(tmp_path, "migrate", "--config", str(config), env=env)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr, out.stderr
    for needle in needles:
        assert needle in out.stderr, out.stderr
    assert not (tmp_path / "db").exists()  # it stopped before touching the database
    return out.stderr


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/db/gateway.db"},
            "channels": [{"name": "a", "kind": "nope", "models": ["x"]}],
        },
    )
    _fails_with(tmp_path, config, "channels.0.kind")


def test_missing_environment_variable_names_the_key(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/db/gateway.db"},
            "channels": [
                {
                    "name": "a",
                    "kind": "openai",
                    "base_url": "https://upstream.invalid/v1",
                    "api_keys": ["sk-fixed", "${GATEWAY_TEST_SURELY_UNSET_KEY}"],
                    "models": ["x"],
                }
            ],
        },
    )
    _fails_with(tmp_path, config, "channels.0.api_keys.1", "GATEWAY_TEST_SURELY_UNSET_KEY")


def test_bad_environment_override_names_the_key(tmp_path: Path, config: Path) -> None:
    _fails_with(tmp_path, config, "server.port", env=_env(GATEWAY_SERVER__PORT="notanumber"))


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    out = run(tmp_path, "migrate", "--config", str(tmp_path / "absent.yaml"))
    assert out.returncode != 0
    assert "absent.yaml" in out.stderr and "Traceback" not in out.stderr
