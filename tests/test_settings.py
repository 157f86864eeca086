import os
import textwrap
from pathlib import Path

import pytest

from gateway.settings import ConfigError, Settings, config_path, load_settings, substitute_env


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No GATEWAY_* variable of the machine, and no ./config.yaml, may leak into a test."""
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


OPENAI_CHANNEL = """
channels:
  - name: main
    kind: openai
    base_url: https://api.example.com/v1/
    api_keys: ["k1"]
    models: [gpt-image-1]
"""


def test_defaults_serve_one_machine() -> None:
    s = load_settings()
    assert s.database.url == "sqlite+aiosqlite:///./data/gateway.db"
    assert s.storage.backend == "local"
    assert s.storage.local.root == "./data/images"
    assert s.redis.url is None
    assert s.channels == []
    assert set(s.groups) == {"default"}
    assert s.retry.max_attempts == 3
    assert s.retry.cooldown_seconds == 30
    assert s.retry.failures_to_cooldown == 3
    assert s.retry.failure_cooldown_seconds == 60
    assert s.retry.retry_on_timeout is False
    assert s.admin.token is None


def test_yaml_file_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        server: {port: 9000}
        groups: {default: {ratio: 1}, economy: {ratio: 0.5}}
        channels:
          - name: cheap
            kind: mock
            models: [nano]
            groups: [economy]
            priority: 5
        """,
    )
    s = load_settings(path)
    assert s.server.port == 9000
    assert s.groups["economy"].ratio == 0.5
    assert [(c.name, c.kind, c.groups, c.priority) for c in s.channels] == [("cheap", "mock", ["economy"], 5)]


def test_base_url_trailing_slash_removed(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, OPENAI_CHANNEL))
    assert s.channels[0].base_url == "https://api.example.com/v1"
    assert s.channels[0].api_keys[0].get_secret_value() == "k1"


def test_config_file_from_env_and_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_path() is None
    write(tmp_path, "server: {port: 7001}\n", name="config.yaml")
    assert load_settings().server.port == 7001  # ./config.yaml when present
    other = write(tmp_path, "server: {port: 7002}\n", name="other.yaml")
    monkeypatch.setenv("GATEWAY_CONFIG", str(other))
    assert load_settings().server.port == 7002
    assert load_settings(tmp_path / "config.yaml").server.port == 7001  # explicit path wins


def test_env_overlay_wins_and_deep_merges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        """
        storage:
          backend: local
          local: {root: /from/yaml, key_prefix: img/}
        retry: {max_attempts: 5, cooldown_seconds: 12}
        """,
    )
    monkeypatch.setenv("GATEWAY_STORAGE__LOCAL__ROOT", "/from/env")
    monkeypatch.setenv("GATEWAY_RETRY__COOLDOWN_SECONDS", "7")
    monkeypatch.setenv("GATEWAY_REDIS__URL", "redis://cache:6379/0")
    s = load_settings(path)
    assert s.storage.local.root == "/from/env"  # env wins
    assert s.storage.local.key_prefix == "img/"  # sibling from the file kept
    assert s.storage.backend == "local"
    assert s.retry.cooldown_seconds == 7
    assert s.retry.max_attempts == 5
    assert s.redis.url == "redis://cache:6379/0"


def test_env_overlay_without_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_STORAGE__BACKEND", "s3")
    monkeypatch.setenv("GATEWAY_STORAGE__S3__BUCKET", "images")
    monkeypatch.setenv("GATEWAY_ADMIN__TOKEN", "admin-secret")
    s = load_settings()
    assert (s.storage.backend, s.storage.s3.bucket) == ("s3", "images")
    assert s.admin.token is not None and s.admin.token.get_secret_value() == "admin-secret"
    assert s.storage.local.root == "./data/images"


def test_var_substitution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_ONE", "sk-one")
    monkeypatch.setenv("UP_HOST", "up.example")
    monkeypatch.setenv("PORT_FROM_ENV", "8123")
    path = write(
        tmp_path,
        """
        server: {port: "${PORT_FROM_ENV}"}
        channels:
          - name: main
            kind: openai
            base_url: https://${UP_HOST}/v1
            api_keys: ["${KEY_ONE}", "${KEY_TWO:-fallback-two}", "${KEY_THREE:-}x"]
            models: [m]
        """,
    )
    s = load_settings(path)
    assert s.server.port == 8123
    ch = s.channels[0]
    assert ch.base_url == "https://up.example/v1"
    assert [k.get_secret_value() for k in ch.api_keys] == ["sk-one", "fallback-two", "x"]


def test_env_value_beats_default_in_substitution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SET", "real")
    assert substitute_env({"a": ["${SET:-unused}", "$SET", "${UNSET:-d}"]}, os.environ) == {
        "a": ["real", "$SET", "d"]
    }


def test_missing_variable_names_the_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        channels:
          - name: main
            kind: openai
            base_url: https://x.example/v1
            api_keys: ["ok", "${DEFINITELY_NOT_SET_VAR}"]
            models: [m]
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "channels.1.api_keys" not in str(info.value)
    assert "channels.0.api_keys.1" in str(info.value)
    assert "DEFINITELY_NOT_SET_VAR" in str(info.value)


def test_bad_value_names_the_dotted_path(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  - {name: a, kind: banana, models: [m]}\n")
    with pytest.raises(ConfigError, match=r"channels\.0\.kind"):
        load_settings(path)


def test_bad_nested_value_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_settings(write(tmp_path, "server: {port: 70000}\n"))
    with pytest.raises(ConfigError, match=r"retry\.max_attempts"):
        load_settings(write(tmp_path, "retry: {max_attempts: zero}\n"))


def test_bad_env_value_names_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_SERVER__PORT", "not-a-port")
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_settings()


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"storage\.bakcend"):
        load_settings(write(tmp_path, "storage: {bakcend: s3}\n"))


def test_duplicate_channel_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        channels:
          - {name: twin, kind: mock, models: [a]}
          - {name: twin, kind: mock, models: [b]}
        """,
    )
    with pytest.raises(ConfigError, match="duplicate channel name 'twin'"):
        load_settings(path)


def test_channel_group_must_be_declared(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  - {name: a, kind: mock, models: [m], groups: [vip]}\n")
    with pytest.raises(ConfigError, match="'vip'"):
        load_settings(path)


def test_openai_channel_needs_base_url(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  - {name: a, kind: openai, api_keys: [k], models: [m]}\n")
    with pytest.raises(ConfigError, match=r"channels\.0.*base_url"):
        load_settings(path)


def test_openai_channel_needs_api_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  - {name: a, kind: openai, base_url: 'https://x/v1', models: [m]}\n")
    with pytest.raises(ConfigError, match=r"channels\.0.*api_keys"):
        load_settings(path)


def test_base_url_must_be_http(tmp_path: Path) -> None:
    path = write(
        tmp_path, "channels:\n  - {name: a, kind: openai, base_url: 'ftp://x', api_keys: [k], models: [m]}\n"
    )
    with pytest.raises(ConfigError, match=r"channels\.0\.base_url"):
        load_settings(path)


def test_mock_channel_needs_no_address() -> None:
    s = Settings.model_validate({"channels": [{"name": "m", "kind": "mock", "models": ["x"]}]})
    assert s.channels[0].base_url is None and s.channels[0].api_keys == []


def test_s3_backend_needs_a_bucket(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bucket"):
        load_settings(write(tmp_path, "storage: {backend: s3}\n"))


def test_file_problems_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "server: {port: 1\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, "- a\n- b\n"))


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")).database.url == "sqlite+aiosqlite:///./data/gateway.db"


def test_public_base_url() -> None:
    assert Settings().public_base_url() == "http://127.0.0.1:8080"
    s = Settings.model_validate({"server": {"public_base_url": "https://gw.example.com/"}})
    assert s.public_base_url() == "https://gw.example.com"
