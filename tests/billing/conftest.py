"""The throw-away PostgreSQL database fixtures of tests/db, for the billing tests too."""

from tests.db.conftest import pg_database, pg_migrated  # noqa: F401  (fixtures, used by name)
