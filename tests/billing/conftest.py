"""The throw-away PostgreSQL database fixture of tests/db, for the billing tests too."""

from tests.db.conftest import pg_database  # noqa: F401  (a fixture, used by name)
