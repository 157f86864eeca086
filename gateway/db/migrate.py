"""Run the Alembic migrations shipped in the `gateway.migrations` package (sync; call outside a loop)."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config

from gateway.db.session import ensure_sqlite_dir


def script_location() -> str:
    """`migrations/`, shipped inside the package as `gateway.migrations` (a link in the source tree)."""
    return str(files("gateway.migrations"))


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", script_location())
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
