"""Command line: `gateway serve|migrate|tokens|demo`. Every command takes --config (else GATEWAY_CONFIG)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import uvicorn

from gateway import logs, metrics, workers
from gateway.api.edge import Edge
from gateway.app import create_app
from gateway.auth import manage
from gateway.db import migrate
from gateway.db import repositories as repo
from gateway.db.session import create_engine, create_sessionmaker
from gateway.settings import ConfigError, Settings, load_settings

DEMO_CHANNEL = {
    "name": "demo-mock",
    "kind": "mock",
    "models": ["mock-chat", "mock-image"],
    "groups": ["default"],
}


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    for name in ("host", "port", "workers"):
        value = getattr(args, name, None)
        if value is not None:
            os.environ[f"GATEWAY_SERVER__{name.upper()}"] = str(value)  # so that --workers children agree
    if args.config:
        os.environ["GATEWAY_CONFIG"] = args.config
    return load_settings(args.config, **overrides)


def app_factory() -> Edge:
    """For `--workers N`: each worker process reads the same config file and environment."""
    settings = load_settings()
    logs.configure(settings.logging.level, settings.logging.log_bodies)  # a worker starts afresh
    if os.environ.get("GATEWAY_DEMO") == "1":
        settings = _with_demo_channel(settings)
    return create_app(settings, drain_on_sigterm=True)


def _serve(settings: Settings) -> None:
    logs.configure(settings.logging.level, settings.logging.log_bodies)
    if settings.database.auto_migrate:
        migrate.upgrade(settings.database.url)
    options: dict[str, Any] = {
        "host": settings.server.host,
        "port": settings.server.port,
        "log_config": None,
        "access_log": settings.logging.access_log,
        "loop": "auto",
        "http": "auto",
        # The drain (api/drain.py) waits for in-flight requests first; this bounds what uvicorn waits after.
        "timeout_graceful_shutdown": settings.server.shutdown_grace_seconds,
        "backlog": 4096,
        "proxy_headers": False,  # nothing reads the client address; saves a layer on every request
        "server_header": False,  # the server's name and version are nobody's business (and a header less)
    }
    if settings.server.workers > 1:
        # Workers keep their metrics in files of one directory, which /metrics adds up.
        created = metrics.prepare_multiprocess_dir()
        try:
            if workers.reuse_port_supported():  # a listening socket per worker (workers.py)
                workers.run("gateway.cli:app_factory", settings.server.workers, options)
            else:
                uvicorn.run(
                    "gateway.cli:app_factory", factory=True, workers=settings.server.workers, **options
                )
        finally:
            metrics.remove_dir(created)
    else:
        uvicorn.run(create_app(settings, drain_on_sigterm=True), **options)


def _with_demo_channel(settings: Settings) -> Settings:
    if any(ch.name == DEMO_CHANNEL["name"] for ch in settings.channels):
        return settings
    data = settings.model_dump(mode="python")
    data["channels"] = [DEMO_CHANNEL, *data["channels"]]
    data["groups"].setdefault("default", {"ratio": 1.0})
    return Settings.model_validate(data)


async def _db(settings: Settings, work: Any) -> Any:
    engine = create_engine(settings.database)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()


def cmd_serve(args: argparse.Namespace) -> int:
    _serve(_settings(args))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.downgrade:
        migrate.downgrade(settings.database.url, args.downgrade)
    else:
        migrate.upgrade(settings.database.url)
    print("database is at", "base" if args.downgrade == "base" else (args.downgrade or "head"))
    return 0


def _create_token(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if args.group not in settings.groups:
        raise ConfigError(
            f"group '{args.group}' is not declared in the config (groups: {sorted(settings.groups)})"
        )
    if args.quota_usd is not None:
        fields["quota_micro_usd"] = manage.usd_to_micro(args.quota_usd)
    if args.models:
        fields["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.allowed_groups:
        fields["allowed_groups"] = [g.strip() for g in args.allowed_groups.split(",") if g.strip()]
    if args.expires_at:
        fields["expires_at"] = datetime.fromisoformat(args.expires_at)

    async def work(session: Any) -> dict[str, Any]:
        token, key = await manage.create(session, name=args.name, group=args.group, **fields)
        return {**manage.token_view(token), "key": key}

    result: dict[str, Any] = asyncio.run(_db(settings, work))
    return result


def cmd_tokens(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.database.auto_migrate:
        migrate.upgrade(settings.database.url)
    if args.action == "create":
        view = _create_token(settings, args)
        if args.json:
            print(orjson.dumps(view).decode())
        else:
            print(f"created token {view['id']} ({view['name']}, group {view['group']})")
            print(f"key (shown once): {view['key']}")
        return 0
    if args.action == "list":

        async def list_work(session: Any) -> list[dict[str, Any]]:
            return [manage.token_view(t) for t in await repo.list_tokens(session, limit=10_000)]

        rows = asyncio.run(_db(settings, list_work))
        for row in rows:
            print(
                orjson.dumps(row).decode()
                if args.json
                else f"{row['id']}  {row['status']:8}  {row['group']:12}  {row['name']}"
            )
        return 0

    async def disable_work(session: Any) -> bool:
        return await repo.update_token(session, args.id, {"status": "disabled"})

    if not asyncio.run(_db(settings, disable_work)):
        print(f"no token with id {args.id}", file=sys.stderr)
        return 1
    print(f"disabled {args.id}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _with_demo_channel(_settings(args))
    os.environ["GATEWAY_DEMO"] = "1"
    migrate.upgrade(settings.database.url)
    ns = argparse.Namespace(
        name="demo", group="default", quota_usd=None, models=None, allowed_groups=None, expires_at=None
    )
    key = _create_token(settings, ns)["key"]
    base = settings.public_base_url()
    print(DEMO_TEXT.format(key=key, base=base), flush=True)
    _serve(settings)
    return 0


DEMO_TEXT = """
Gateway demo: a built-in mock upstream serves the models mock-chat and mock-image.
Demo token (shown once): {key}

Try it:
  curl {base}/v1/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "mock-chat", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

An image in a chat answer (stored under ./data/images; the answer shows its URL):
  curl {base}/v1/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "mock-image", "messages": [{{"role": "user", "content": "A lighthouse at dusk"}}]}}'

Or with the OpenAI SDK (pip install openai):
  from openai import OpenAI
  client = OpenAI(base_url="{base}/v1", api_key="{key}")
  print(client.chat.completions.create(model="mock-chat",
        messages=[{{"role": "user", "content": "Hello!"}}]).choices[0].message.content)
  drawn = client.chat.completions.create(model="mock-image",
        messages=[{{"role": "user", "content": "A lighthouse at dusk"}}]).choices[0].message
  print(drawn.model_extra["images"][0]["image_url"]["url"])
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="OpenAI-compatible image generation gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", help="YAML config file (default: $GATEWAY_CONFIG, else ./config.yaml)")
        return p

    for name, help_text in (("serve", "run the gateway"), ("demo", "run with a built-in mock upstream")):
        p = command(name, help_text)
        p.add_argument("--host")
        p.add_argument("--port", type=int)
        if name == "serve":
            p.add_argument("--workers", type=int)
    p = command("migrate", "apply database migrations")
    p.add_argument("--downgrade", metavar="REVISION", help="downgrade to REVISION (e.g. base) instead")

    tokens = sub.add_parser("tokens", help="manage client tokens").add_subparsers(
        dest="action", required=True
    )
    create = tokens.add_parser("create", help="create a token and print its key once")
    create.add_argument("--config")
    create.add_argument("--name", required=True)
    create.add_argument("--group", default="default")
    create.add_argument("--quota-usd", type=float)
    create.add_argument("--models", help="comma-separated allow-list")
    create.add_argument("--allowed-groups", help="comma-separated groups the token may pick with `group`")
    create.add_argument("--expires-at", help="ISO 8601 time")
    create.add_argument("--json", action="store_true", help="print the token as one JSON object")
    listing = tokens.add_parser("list", help="list tokens")
    listing.add_argument("--config")
    listing.add_argument("--json", action="store_true")
    disable = tokens.add_parser("disable", help="disable a token")
    disable.add_argument("--config")
    disable.add_argument("id")
    return parser


COMMANDS = {"serve": cmd_serve, "migrate": cmd_migrate, "tokens": cmd_tokens, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
