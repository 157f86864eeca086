"""The Alembic migrations: upgrade to head builds the §6.3/§6.5 tables exactly as the models declare
them, downgrade to base removes them, on SQLite and on PostgreSQL (§8.2)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db import (
    migrate,
    models,  # noqa: F401  (registers the tables on Base.metadata)
)
from gateway.db.base import Base
from tests.db.conftest import in_thread, requires_postgres

TOKEN_COLUMNS = {
    "id",
    "name",
    "key_hash",
    "key_prefix",
    "group",
    "allowed_groups",
    "models",
    "quota_micro_usd",
    "used_micro_usd",
    "expires_at",
    "status",
    "rpm_limit",
    "max_concurrency",
    "chat_image_field",
    "created_at",
    "last_used_at",
}
# §6.5 "Record fields, as the admin API returns them", plus the surrogate primary key.
USAGE_COLUMNS = {
    "id",
    "request_id",
    "created_at",
    "token_id",
    "group",
    "endpoint",
    "model",
    "upstream_model",
    "channel",
    "attempts",
    "status",
    "http_status",
    "error_code",
    "stream",
    "latency_ms",
    "ttfb_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "text_input_tokens",
    "cached_input_tokens",
    "image_input_tokens",
    "text_output_tokens",
    "image_output_tokens",
    "image_count",
    "image_size",
    "image_quality",
    "unit_price_micro_usd",
    "cost_micro_usd",
    "usage_estimated",
    "shortfall_micro_usd",
}
NULLABLE_TOKEN_COLUMNS = {
    "models",
    "quota_micro_usd",
    "expires_at",
    "rpm_limit",
    "max_concurrency",
    "chat_image_field",
    "last_used_at",
}


def _inspect(url: str, work: Callable[[Connection], Any]) -> Any:
    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    return in_thread(asyncio.run, run())


def _tables(conn: Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


def _schema(conn: Connection) -> dict[str, Any]:
    insp = sa.inspect(conn)
    return {
        name: {
            "columns": {c["name"]: c for c in insp.get_columns(name)},
            "pk": insp.get_pk_constraint(name)["constrained_columns"],
            "unique": [u["column_names"] for u in insp.get_unique_constraints(name)],
            "indexes": {i["name"]: (i["column_names"], bool(i["unique"])) for i in insp.get_indexes(name)},
        }
        for name in ("tokens", "usage_records")
    }


def _drift(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    diffs: list[Any] = compare_metadata(context, Base.metadata)
    return diffs


def _check_round_trip(url: str) -> None:
    migrate.upgrade(url)
    try:
        assert {"tokens", "usage_records", "alembic_version"} <= _inspect(url, _tables)
        schema = _inspect(url, _schema)
        tokens, usage = schema["tokens"], schema["usage_records"]

        assert set(tokens["columns"]) == TOKEN_COLUMNS
        assert set(usage["columns"]) == USAGE_COLUMNS
        assert tokens["pk"] == ["id"]
        assert usage["pk"] == ["id"]
        for name, column in tokens["columns"].items():
            assert column["nullable"] == (name in NULLABLE_TOKEN_COLUMNS), name
        # Only the hash is stored, and it identifies the token: one row per key.
        assert ["key_hash"] in tokens["unique"] or tokens["indexes"].get("uq_tokens_key_hash") == (
            ["key_hash"],
            True,
        )
        assert "key" not in tokens["columns"]
        assert isinstance(tokens["columns"]["quota_micro_usd"]["type"], sa.BigInteger)
        assert isinstance(usage["columns"]["cost_micro_usd"]["type"], sa.BigInteger)
        assert isinstance(usage["columns"]["unit_price_micro_usd"]["type"], sa.BigInteger)
        assert tokens["indexes"]["ix_tokens_group"] == (["group"], False)
        assert tokens["indexes"]["ix_tokens_status"] == (["status"], False)
        assert usage["indexes"]["ix_usage_records_token_id_created_at"] == (["token_id", "created_at"], False)
        assert usage["indexes"]["ix_usage_records_request_id"] == (["request_id"], False)
        # Every request id the edge accepts (128 characters) fits (20261129_usage_widths).
        assert usage["columns"]["request_id"]["type"].length == 128

        # The migration and the models describe the same schema: autogenerate finds nothing to do.
        assert _inspect(url, _drift) == []

        # Idempotent: a second upgrade (every `serve` start runs one) changes nothing.
        migrate.upgrade(url)
        assert _inspect(url, _drift) == []
    finally:
        migrate.downgrade(url, "base")

    assert not {"tokens", "usage_records"} & _inspect(url, _tables)
    assert _inspect(url, lambda c: c.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar()) == 0

    # And back up again from base: the downgrade left nothing behind that blocks a fresh upgrade.
    migrate.upgrade(url)
    try:
        assert {"tokens", "usage_records"} <= _inspect(url, _tables)
    finally:
        migrate.downgrade(url, "base")


def _insert_usage(conn: Connection, request_id: str) -> None:
    conn.execute(
        sa.text(
            'INSERT INTO usage_records (request_id, created_at, token_id, "group", endpoint, model,'
            " attempts, status, http_status, stream, latency_ms, prompt_tokens, completion_tokens,"
            " total_tokens, text_input_tokens, cached_input_tokens, image_input_tokens, text_output_tokens,"
            " image_output_tokens, image_count, unit_price_micro_usd, cost_micro_usd, usage_estimated)"
            " VALUES (:rid, CURRENT_TIMESTAMP, 't', 'g', 'e', 'm', '[]', 'failed', 0, false, 0, 0, 0, 0,"
            " 0, 0, 0, 0, 0, 0, 0, 0, false)"
        ),
        {"rid": request_id},
    )
    conn.commit()


def _request_ids(conn: Connection) -> list[str]:
    return list(conn.execute(sa.text("SELECT request_id FROM usage_records ORDER BY id")).scalars())


def _check_widths_downgrade_keeps_records(url: str) -> None:
    """Down from the widened request_id: a record with a longer id is kept, its id cut to 64."""
    migrate.upgrade(url)
    try:
        _inspect(url, lambda c: _insert_usage(c, "r" * 100))
        assert _inspect(url, _request_ids) == ["r" * 100]
        migrate.downgrade(url, "0001")
        assert _inspect(url, _request_ids) == ["r" * 64]
        migrate.upgrade(url)
        assert _inspect(url, _drift) == []
    finally:
        migrate.downgrade(url, "base")


def test_sqlite_upgrade_and_downgrade(tmp_path: Path) -> None:
    # A directory that does not exist yet: upgrade creates it (the ./data default on a fresh machine).
    db = tmp_path / "nested" / "dir" / "gateway.db"
    _check_round_trip(f"sqlite+aiosqlite:///{db}")
    assert db.is_file()
    _check_widths_downgrade_keeps_records(f"sqlite+aiosqlite:///{db}")


@requires_postgres
def test_postgres_upgrade_and_downgrade(pg_database: str) -> None:
    assert _inspect(pg_database, _tables) == set()
    _check_round_trip(pg_database)
    _check_widths_downgrade_keeps_records(pg_database)
