"""Configuration: a YAML file overlaid by `GATEWAY_*` environment variables (`__` nests).

`${VAR}` in the YAML is replaced from the environment before validation. A bad value fails at
start-up with a `ConfigError` naming the key's path and the reason.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.pricing_settings import PricingSettings, Section

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A configuration problem, with the path of the offending key."""


_Section = Section


class ServerSettings(_Section):
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    public_base_url: str | None = None  # for URLs of locally stored files; default http://<host>:<port>
    sse_keepalive_seconds: float = Field(10.0, ge=0)
    # §4.7: a non-stream call sends 200 at once, then a space every interval until its JSON; 0 = off
    nonstream_keepalive_seconds: float = Field(0.0, ge=0)
    shutdown_grace_seconds: float = Field(30.0, ge=0)  # SIGTERM: in-flight requests get this long
    # glibc: freed memory (image buffers) kept for the next requests instead of returned, and refaulted,
    # page by page; 0 = the allocator's defaults (see gateway/allocator.py)
    malloc_keep_mb: float = Field(256, ge=0)


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///./data/gateway.db"
    auto_migrate: bool = True
    pool_size: int = Field(10, ge=1)


class RedisSettings(_Section):
    url: str | None = None  # redis://[:password@]host:port/db; shares limits, cooldowns and broadcasts
    key_prefix: str = "gateway:"  # every key and the pub/sub channel start with it
    timeout_seconds: float = Field(1.0, gt=0)  # connect and command timeout; past it, per-process fallback

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, v: str | None) -> str | None:
        if not v:  # an empty GATEWAY_REDIS__URL means no Redis
            return None
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v


class AdminSettings(_Section):
    token: SecretStr | None = None


class AuthSettings(_Section):
    token_cache_seconds: float = Field(10.0, ge=0)


class S3Settings(_Section):
    endpoint_url: str | None = None
    region: str | None = None
    bucket: str = ""
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    key_prefix: str = ""
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    public_base_url: str | None = None
    presign_ttl_seconds: int = Field(7 * 24 * 3600, ge=1, le=7 * 24 * 3600)
    # SHA-256 of each upload in its SigV4 signature. auto: over plain http only (SigV4 needs it there to
    # cover the body); over https TLS protects the body and `UNSIGNED-PAYLOAD` is sent. never: unsigned
    # over plain http too (AWS S3, MinIO, R2 accept it; a 16 MB image saves ~10 ms of CPU). always: hashed.
    sign_payload: Literal["auto", "always", "never"] = "auto"

    @property
    def payload_signed(self) -> bool:
        if self.sign_payload != "auto":
            return self.sign_payload == "always"
        return not (self.endpoint_url is None or self.endpoint_url.lower().startswith("https://"))


class LocalStorageSettings(_Section):
    root: str = "./data/images"
    key_prefix: str = ""


class StorageSettings(_Section):
    backend: Literal["s3", "local", "none"] = "local"
    rehost: Literal["base64", "always"] = "base64"
    upload_attempts: int = Field(3, ge=1, le=10)
    s3: S3Settings = S3Settings()
    local: LocalStorageSettings = LocalStorageSettings()

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> StorageSettings:
        if self.backend == "s3" and not self.s3.bucket:
            raise ValueError("storage.s3.bucket is required when storage.backend is s3")
        return self


class LimitsSettings(_Section):
    max_request_body_mb: float = Field(64, gt=0)
    max_image_download_mb: float = Field(32, gt=0)
    image_fetch_timeout_seconds: float = Field(20, gt=0)
    # The most an upstream answer (a whole JSON answer, or one event of a stream) may hold.
    max_upstream_response_mb: float = Field(128, gt=0)

    @property
    def max_request_body_bytes(self) -> int:
        return int(self.max_request_body_mb * 1024 * 1024)

    @property
    def max_upstream_response_bytes(self) -> int:
        return int(self.max_upstream_response_mb * 1024 * 1024)


class SecuritySettings(_Section):
    allow_private_image_urls: bool = False
    # CIDR ranges that client image URLs may reach even though they are private, e.g. ["10.20.0.0/16"].
    allowed_image_url_networks: list[str] = []

    @field_validator("allowed_image_url_networks")
    @classmethod
    def _valid_networks(cls, v: list[str]) -> list[str]:
        for net in v:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"{net!r} is not an IP network in CIDR form: {exc}") from None
        return v


class RetrySettings(_Section):
    max_attempts: int = Field(3, ge=1, le=20)
    retry_on_timeout: bool = False
    cooldown_seconds: float = Field(30, ge=0)
    max_cooldown_seconds: float = Field(600, ge=0)
    failures_to_cooldown: int = Field(3, ge=1)
    failure_cooldown_seconds: float = Field(60, ge=0)


class ChatSettings(_Section):
    image_field: Literal["none", "list_data", "object_url"] = "none"


class GroupSettings(_Section):
    ratio: float = Field(1.0, ge=0)


# Prices are USD as decimals (never floats); `Money` refuses negatives, NaN and infinities.
class MockSettings(_Section):
    latency_ms: float = Field(0, ge=0)
    failure_rate: float = Field(0, ge=0, le=1)
    stream_chunks: int = Field(8, ge=1)
    image_size: int = Field(64, ge=1, le=4096)


class ChannelSettings(_Section):
    name: str = Field(min_length=1)
    kind: Literal["openai", "gemini", "mock"]
    base_url: str | None = None
    api_keys: list[SecretStr] = []
    models: list[str] = Field(min_length=1)
    model_map: dict[str, str] = {}
    groups: list[str] = ["default"]
    priority: int = 0
    weight: float = Field(1.0, gt=0)
    timeout_seconds: float = Field(300, gt=0)
    headers: dict[str, str] = {}
    enabled: bool = True
    response_format: Literal["unsupported"] | None = None
    default_response_format: Literal["url", "b64_json"] | None = None
    edits_format: Literal["json", "multipart"] = "json"
    image_models: list[str] | None = None  # gemini: models that answer images; default: names with "image"
    image_size_models: list[str] = []  # gemini: models that take imageConfig.imageSize (1K/2K/4K)
    # gemini: models that refuse responseModalities ["IMAGE"] alone and need ["TEXT", "IMAGE"]
    image_text_models: list[str] = []
    prompt_image_urls: bool | None = None  # image URLs inside an Images API prompt are input images
    # request fields applied when the client did not send them, per client model name (§6.1)
    model_defaults: dict[str, dict[str, Any]] = {}
    rehost_urls: bool = False
    mock: MockSettings = MockSettings()

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/") if v else v

    @model_validator(mode="after")
    def _upstream_needs_address(self) -> ChannelSettings:
        if self.kind != "mock":
            if not self.base_url:
                raise ValueError(f"channel {self.name!r}: base_url is required for kind {self.kind}")
            if not self.api_keys:
                raise ValueError(f"channel {self.name!r}: at least one api_keys entry is required")
        return self

    def upstream_model(self, model: str) -> str:
        return self.model_map.get(model, model)


class UsageSettings(_Section):
    batch_size: int = Field(200, ge=1)
    flush_interval_seconds: float = Field(1.0, gt=0)
    max_buffer: int = Field(50_000, ge=1)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_bodies: bool = False
    access_log: bool = False


class MetricsSettings(_Section):
    public: bool = False


class ConsoleSettings(_Section):
    """The web console at /console: a browser client of the admin API, signed in with the admin token."""

    enabled: bool = True
    session_hours: float = Field(12, gt=0, le=24 * 30)  # a sign-in lasts this long, then the cookie expires
    # Mixed into the session signing key with the admin token; the same on every node. Set it to a long
    # random value so a stolen cookie cannot be used to guess a weak admin token offline, and change it
    # to end every session at once.
    session_secret: SecretStr | None = None
    # Secure cookie flag: "auto" sets it when the request came over https (or public_base_url is https).
    secure_cookie: Literal["auto", "always", "never"] = "auto"


class JobsSettings(_Section):
    """§4.6 async image jobs: leases, retention and per-node limits."""

    lease_seconds: float = Field(60.0, gt=0)  # a running job's node renews it every third of this
    retention_hours: float = Field(24.0, gt=0)  # finished jobs (and their results) are purged after
    sweep_interval_seconds: float = Field(15.0, gt=0)  # expired leases and the purge, checked this often
    max_running: int = Field(16, ge=1)  # jobs one process runs at once; more wait their turn (queued)
    max_queued: int = Field(1000, ge=0)  # jobs waiting per process; past it a new job is refused (503)
    max_result_mb: float = Field(32.0, gt=0)  # a result kept as base64 (no storage) may not exceed this

    @property
    def max_result_bytes(self) -> int:
        return int(self.max_result_mb * 1024 * 1024)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_nested_delimiter="__",
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    admin: AdminSettings = AdminSettings()
    auth: AuthSettings = AuthSettings()
    storage: StorageSettings = StorageSettings()
    limits: LimitsSettings = LimitsSettings()
    security: SecuritySettings = SecuritySettings()
    retry: RetrySettings = RetrySettings()
    chat: ChatSettings = ChatSettings()
    groups: dict[str, GroupSettings] = {"default": GroupSettings()}
    pricing: PricingSettings = PricingSettings()
    channels: list[ChannelSettings] = []
    usage: UsageSettings = UsageSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    console: ConsoleSettings = ConsoleSettings()
    jobs: JobsSettings = JobsSettings()

    @model_validator(mode="after")
    def _channels_consistent(self) -> Settings:
        seen: set[str] = set()
        for ch in self.channels:
            if ch.name in seen:
                raise ValueError(f"duplicate channel name {ch.name!r}")
            seen.add(ch.name)
            for group in ch.groups:
                if group not in self.groups:
                    raise ValueError(
                        f"channel {ch.name!r} lists group {group!r}, which is not declared in groups"
                    )
        return self

    def public_base_url(self) -> str:
        if self.server.public_base_url:
            return self.server.public_base_url.rstrip("/")
        host = "127.0.0.1" if self.server.host in ("0.0.0.0", "::", "") else self.server.host
        return f"http://{host}:{self.server.port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)


def substitute_env(value: Any, environ: dict[str, str] | os._Environ[str], path: str = "") -> Any:
    """Replace `${VAR}` (or `${VAR:-default}`) in every string of a parsed YAML tree."""
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"config error at {path or '<root>'}: environment variable {name} is not set")

        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute_env(v, environ, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, environ, f"{path}.{i}") for i, v in enumerate(value)]
    return value


def config_path(explicit: str | None = None) -> Path | None:
    """The config file to read: `--config`, else `GATEWAY_CONFIG`, else ./config.yaml if present."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("GATEWAY_CONFIG")
    if env:
        return Path(env)
    default = Path("config.yaml")
    return default if default.is_file() else None


def _format_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"config error at {loc}: {e['msg']}")
    return "\n".join(lines)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the YAML file (if any), substitute `${VAR}`, overlay GATEWAY_* env, validate."""
    data: dict[str, Any] = {}
    file = config_path(str(path)) if path else config_path()
    if file is not None:
        try:
            raw = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {file} does not exist") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {file} is not valid YAML: {exc}") from exc
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError(f"config file {file} must hold a mapping at the top level")
        data = substitute_env(raw or {}, os.environ)
    data.update(overrides)
    admin_token = os.environ.get("GATEWAY_ADMIN_TOKEN")
    if admin_token:  # the documented short spelling of GATEWAY_ADMIN__TOKEN
        data["admin"] = {**(data.get("admin") or {}), "token": admin_token}
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None
