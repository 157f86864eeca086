"""What a database error means for the caller: the database is unreachable (retry later), or it refused
this statement's values (retrying the same values can never succeed).

SQLAlchemy's own classes do not say it on their own: asyncpg errors mostly arrive as a bare DBAPIError,
and asyncpg's client-side "invalid input" error is an InterfaceError. The SQLSTATE class decides where
the driver gives one.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

# SQLSTATE classes of a database that cannot serve right now: connection exception, insufficient
# resources (disk full, too many connections), operator intervention (shutdown, cannot connect now).
_OUTAGE_CLASSES = frozenset({"08", "53", "57"})
# Data exception (value too long, out of range, bad encoding) and integrity constraint violation.
_REFUSAL_CLASSES = frozenset({"22", "23"})

DATABASE_ERRORS: tuple[type[Exception], ...] = (OSError, sa_exc.TimeoutError, sa_exc.DBAPIError)
"""What a statement raises when the database is down or broken (the builtin TimeoutError is an OSError)."""


def sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state if isinstance(state, str) and len(state) == 5 else None


def is_outage(exc: BaseException) -> bool:
    """The database could not be reached or cannot serve now; the same statement may succeed later."""
    if isinstance(exc, OSError | sa_exc.TimeoutError):  # refused, reset, timed out, pool exhausted
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = sqlstate(exc)
    if state is not None:
        return state[:2] in _OUTAGE_CLASSES
    # SQLite: "database is locked", "unable to open database file", disk I/O errors.
    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)


def is_refusal(exc: BaseException) -> bool:
    """The database (or the driver, before sending) refused these values."""
    state = sqlstate(exc)
    if state is not None:
        return state[:2] in _REFUSAL_CLASSES
    if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError):
        return True
    if isinstance(exc, sa_exc.StatementError) and not isinstance(exc, sa_exc.DBAPIError):
        return True  # a bind parameter could not be converted
    return isinstance(exc, ValueError | TypeError | ArithmeticError)  # e.g. sqlite3's OverflowError


def describe(exc: BaseException) -> str:
    """One short line about the error, without the statement or its parameters."""
    inner = getattr(exc, "orig", None) or exc
    first = (str(inner).strip().splitlines() or [""])[0]
    return f"{type(inner).__name__}: {first[:300]}"
