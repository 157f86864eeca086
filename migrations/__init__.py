"""Alembic migrations (installed as the `gateway.migrations` package)."""
