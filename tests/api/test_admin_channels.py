"""The admin channel endpoints (§7) in process, through the real app on a migrated SQLite database:
state and recent health per key (never a key or a base URL), run-time switches, and config reload."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.db import migrate
from gateway.routing.policy import Decision
from gateway.runtime import Runtime
from gateway.settings import load_settings
from tests.redis_support import DEAD_REDIS_URL

ADMIN = {"Authorization": "Bearer adm"}
SECRET_KEYS = ["sk-upstream-secret-one", "sk-upstream-secret-two"]
SECRET_URL = "https://user:url-password@upstream.example/v1"


def config(db: Path, **extra: Any) -> dict[str, Any]:
    return {
        "database": {"url": f"sqlite+aiosqlite:///{db}"},
        "admin": {"token": "adm"},
        "storage": {"backend": "none"},
        "groups": {"default": {}, "economy": {"ratio": 0.5}},
        "channels": [
            {"name": "mock-a", "kind": "mock", "models": ["mock-chat"], "priority": 5},
            {
                "name": "paid",
                "kind": "openai",
                "base_url": SECRET_URL,
                "api_keys": SECRET_KEYS,
                "models": ["gpt-x"],
                "groups": ["default", "economy"],
                "weight": 2,
                "headers": {"x-secret-header": "header-secret"},
            },
            {"name": "parked", "kind": "mock", "models": ["parked-model"], "enabled": False},
        ],
        **extra,
    }


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data))


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.yaml"
    write(path, config(tmp_path / "gateway.db"))
    monkeypatch.setenv("GATEWAY_CONFIG", str(path))
    return path


@pytest.fixture
def client(config_file: Path) -> Iterator[TestClient]:
    settings = load_settings(config_file)
    with ThreadPoolExecutor(max_workers=1) as pool:  # migrate runs its own event loop
        pool.submit(migrate.upgrade, settings.database.url).result()
    with TestClient(create_app(settings)) as c:
        yield c


def runtime(c: TestClient) -> Runtime:
    rt: Runtime = c.app.state.runtime  # type: ignore[attr-defined]
    return rt


@pytest.fixture
def key(client: TestClient) -> str:
    resp = client.post("/admin/tokens", json={"name": "t"}, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    created: str = resp.json()["key"]
    return created


def chat(c: TestClient, key: str, model: str = "mock-chat") -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return c.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})


def channels(c: TestClient) -> dict[str, dict[str, Any]]:
    resp = c.get("/admin/channels", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    return {ch["name"]: ch for ch in resp.json()["data"]}


def test_admin_token_required(client: TestClient) -> None:
    for method, path in [("GET", "/admin/channels"), ("POST", "/admin/channels/paid/disable"),
                         ("POST", "/admin/reload")]:  # fmt: skip
        assert client.request(method, path).status_code == 401
        assert client.request(method, path, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_every_channel_and_key_is_listed_without_secrets(client: TestClient) -> None:
    resp = client.get("/admin/channels", headers=ADMIN)
    for secret in [*SECRET_KEYS, "url-password", "upstream.example", "header-secret"]:
        assert secret not in resp.text
    listed = {ch["name"]: ch for ch in resp.json()["data"]}
    assert list(listed) == ["mock-a", "paid", "parked"]
    paid = listed["paid"]
    assert {k: paid[k] for k in ("kind", "models", "groups", "priority", "weight", "enabled")} == {
        "kind": "openai", "models": ["gpt-x"], "groups": ["default", "economy"], "priority": 0,
        "weight": 2.0, "enabled": True,
    }  # fmt: skip
    assert paid["keys"] == [
        {"index": i, "state": "ok", "cooldown_until": None, "recent_attempts": 0, "success_rate": None,
         "latency_p50_ms": None}
        for i in range(2)
    ]  # fmt: skip
    assert listed["parked"]["enabled"] is False and listed["parked"]["disabled_by"] == "config"


def test_cooldowns_disables_and_recent_health_are_shown(client: TestClient, key: str) -> None:
    rt = runtime(client)
    rt.health.failure("paid", 1, Decision(True, "key", "cooldown", 120.0), 40)
    rt.health.failure("paid", 0, Decision(True, "key", "disable"), 10)
    assert chat(client, key).status_code == 200
    listed = channels(client)
    k0, k1 = listed["paid"]["keys"]
    assert k0["state"] == "disabled" and k0["cooldown_until"] is None
    assert k1["state"] == "cooling_down"
    until = datetime.fromisoformat(k1["cooldown_until"])
    assert timedelta(seconds=100) < until - datetime.now(UTC) <= timedelta(seconds=121)
    assert (k1["recent_attempts"], k1["success_rate"]) == (1, 0.0)
    mock = listed["mock-a"]
    assert (mock["recent_attempts"], mock["success_rate"]) == (1, 1.0)
    assert isinstance(mock["latency_p50_ms"], int)


def test_disable_and_enable_at_run_time(client: TestClient, key: str) -> None:
    resp = client.post("/admin/channels/mock-a/disable", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    assert resp.json()["enabled"] is False and resp.json()["disabled_by"] == "admin"
    refused = chat(client, key)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "no_available_channel"
    resp = client.post("/admin/channels/mock-a/enable", headers=ADMIN)
    assert resp.json()["enabled"] is True and resp.json()["disabled_by"] is None
    assert chat(client, key).status_code == 200


def test_switch_errors(client: TestClient) -> None:
    resp = client.post("/admin/channels/nope/disable", headers=ADMIN)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "channel_not_found"
    resp = client.post("/admin/channels/parked/enable", headers=ADMIN)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "channel_disabled_in_config"
    assert client.post("/admin/channels/mock-a/explode", headers=ADMIN).status_code == 400


def test_reload_adds_a_channel_that_serves_at_once(client: TestClient, key: str, config_file: Path) -> None:
    assert chat(client, key, "new-model").status_code == 404
    data = config(Path(runtime(client).settings.database.url.split("///")[1]))
    data["channels"].append({"name": "fresh", "kind": "mock", "models": ["new-model"]})
    write(config_file, data)
    resp = client.post("/admin/reload", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"reloaded": True, "channels": 4, "needs_restart": [], "other_nodes_asked": False}
    assert chat(client, key, "new-model").status_code == 200
    assert "fresh" in channels(client)


def test_a_bad_file_is_refused_with_the_keys_path_and_the_old_config_stays(
    client: TestClient, key: str, config_file: Path
) -> None:
    data = config(Path(runtime(client).settings.database.url.split("///")[1]))
    data["channels"][0]["kind"] = "nonsense"
    write(config_file, data)
    resp = client.post("/admin/reload", headers=ADMIN)
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == "invalid_config" and "channels.0" in err["message"]
    assert chat(client, key).status_code == 200
    assert list(channels(client)) == ["mock-a", "paid", "parked"]


def test_a_yaml_error_never_quotes_the_file(client: TestClient, config_file: Path) -> None:
    config_file.write_text('channels:\n  - api_keys: ["sk-literal-secret-in-file"\n    name: x\n')
    resp = client.post("/admin/reload", headers=ADMIN)
    assert resp.status_code == 400
    message = resp.json()["error"]["message"]
    assert "not valid YAML" in message and "line" in message
    assert "sk-literal-secret-in-file" not in message


def test_reload_names_the_sections_that_need_a_restart(client: TestClient, config_file: Path) -> None:
    rt = runtime(client)
    data = config(Path(rt.settings.database.url.split("///")[1]), retry={"max_attempts": 5})
    data["database"]["pool_size"] = 3
    write(config_file, data)
    resp = client.post("/admin/reload", headers=ADMIN)
    assert resp.json()["needs_restart"] == ["database"]
    assert rt.settings.database.pool_size == 10  # still the running engine's
    assert rt.settings.retry.max_attempts == 5  # live


def test_reload_without_a_config_file(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_CONFIG")
    monkeypatch.chdir(Path(__file__).parent)  # no config.yaml here
    resp = client.post("/admin/reload", headers=ADMIN)
    assert resp.status_code == 400 and "no config file" in resp.json()["error"]["message"]


def test_with_redis_down_everything_works_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    write(path, config(tmp_path / "gateway.db", redis={"url": DEAD_REDIS_URL, "timeout_seconds": 0.5}))
    monkeypatch.setenv("GATEWAY_CONFIG", str(path))
    settings = load_settings(path)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(migrate.upgrade, settings.database.url).result()
    with caplog.at_level("WARNING", logger="gateway.cluster"), TestClient(create_app(settings)) as c:
        resp = c.post(
            "/admin/tokens", json={"name": "t", "rpm_limit": 2, "max_concurrency": 3}, headers=ADMIN
        )
        limited = resp.json()["key"]
        assert [chat(c, limited).status_code for _ in range(3)] == [200, 200, 429]  # limited, per process
        resp = c.post("/admin/tokens", json={"name": "free"}, headers=ADMIN)
        key, token_id = resp.json()["key"], resp.json()["id"]
        assert c.post("/admin/channels/mock-a/disable", headers=ADMIN).status_code == 200
        assert chat(c, key).status_code == 503
        assert c.delete(f"/admin/tokens/{token_id}", headers=ADMIN).status_code == 200
        assert chat(c, key).status_code == 401
    told = [r.getMessage() for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(told) == 1  # once, not per request or per feature
