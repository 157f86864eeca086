"""The usage writer tells an outage (keep the records, retry later) from a refusal (write the batch
record by record, drop only what the database will not take), with the inserts scripted."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import repositories as repo
from gateway.domain import UsageRecord
from tests.billing.test_usage_writer import Sessionmaker, count_rows, record, request_ids, writer


class _Orig(Exception):
    """A driver error carrying a SQLSTATE, as asyncpg's do."""

    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"driver error {sqlstate}")
        self.sqlstate = sqlstate


def db_error(sqlstate: str | None, cls: type[DBAPIError] = DBAPIError) -> DBAPIError:
    return cls("INSERT ...", None, _Orig(sqlstate))


class ScriptedInserts:
    """Stands in for repo.insert_usage_records: fails per request id as `fail` says, else inserts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: dict[str, Exception]) -> None:
        self.fail = fail
        self.calls: list[list[str]] = []
        self.real = repo.insert_usage_records
        monkeypatch.setattr(repo, "insert_usage_records", self)

    async def __call__(self, session: AsyncSession, records: list[UsageRecord]) -> None:
        ids = [r.request_id for r in records]
        self.calls.append(ids)
        for rid in ids:
            if rid in self.fail:
                raise self.fail[rid]
        await self.real(session, records)


async def test_outage_error_keeps_the_batch_without_trying_rows_one_by_one(
    sessionmaker: Sessionmaker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    lost = db_error("08006")  # connection failure
    inserts = ScriptedInserts(monkeypatch, {"req-2": lost})
    w = writer(sessionmaker, batch_size=10)
    for i in range(5):
        w.submit(record(i))
    with caplog.at_level("ERROR", logger="gateway.usage"):
        assert await w.flush() is False
    assert inserts.calls == [[f"req-{i}" for i in range(5)]]  # the batch only: an outage is not a row's fault
    assert (w.depth, w.written, w.refused) == (5, 0, 0)
    assert "will retry" in caplog.text and all(r.exc_info is None for r in caplog.records)
    del inserts.fail["req-2"]  # the database is back
    assert await w.flush() is True
    assert await request_ids(sessionmaker) == [f"req-{i}" for i in range(5)]


async def test_database_going_away_while_writing_one_by_one_keeps_the_rest(
    sessionmaker: Sessionmaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    inserts = ScriptedInserts(
        monkeypatch, {"req-1": db_error("22001"), "req-3": db_error(None, OperationalError)}
    )
    w = writer(sessionmaker, batch_size=10)
    for i in range(6):
        w.submit(record(i))
    assert await w.flush() is False
    assert inserts.calls[1:] == [["req-0"], ["req-1"], ["req-2"], ["req-3"]]
    assert await request_ids(sessionmaker) == ["req-0", "req-2"]
    assert (w.depth, w.written, w.refused) == (3, 2, 1)  # req-1 refused; req-3 .. req-5 wait
    del inserts.fail["req-3"]
    assert await w.flush() is True
    assert await request_ids(sessionmaker) == ["req-0", "req-2", "req-3", "req-4", "req-5"]


async def test_rows_failing_for_no_clear_reason_are_kept_when_nothing_can_be_written(
    sessionmaker: Sessionmaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. a missing table or a read-only replica: every row fails the same way, none for its values.
    broken = db_error("42P01", ProgrammingError)
    inserts = ScriptedInserts(monkeypatch, {f"req-{i}": broken for i in range(3)})
    w = writer(sessionmaker, batch_size=10)
    for i in range(3):
        w.submit(record(i))
    assert await w.flush() is False
    assert (w.depth, w.written, w.refused) == (3, 0, 0)
    inserts.fail.clear()
    assert await w.flush() is True
    assert await count_rows(sessionmaker) == 3


async def test_a_row_failing_for_no_clear_reason_is_dropped_when_the_others_go_in(
    sessionmaker: Sessionmaker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ScriptedInserts(monkeypatch, {"req-1": db_error("XX000", ProgrammingError)})
    w = writer(sessionmaker, batch_size=10)
    for i in range(3):
        w.submit(record(i))
    with caplog.at_level("ERROR", logger="gateway.usage"):
        assert await w.flush() is True
    assert await request_ids(sessionmaker) == ["req-0", "req-2"]
    assert (w.depth, w.written, w.refused) == (0, 2, 1)
    assert "usage record req-1 refused" in caplog.text
