"""The admin usage endpoints (§7) through the real app: every filter, cursor paging, summaries whose totals
equal the sums of the records, and a CSV export of 10,000 records fetched in bounded batches. On SQLite,
and on PostgreSQL when GATEWAY_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.api.admin import usage as usage_api
from gateway.db import repositories as repo
from gateway.domain import Attempt, Usage, UsageRecord
from tests.billing.support import ADMIN, running, runtime, settings
from tests.db.conftest import create_pg_database, drop_pg_database, requires_postgres

T0 = datetime(2026, 3, 1, 0, 30, tzinfo=UTC)
NOON_2 = datetime(2026, 3, 2, 12, tzinfo=UTC)


def dataset() -> list[UsageRecord]:
    """30 records over four UTC days, every filterable field varied."""
    out = []
    for i in range(30):
        out.append(
            UsageRecord(
                request_id=f"req-{i:02d}",
                created_at=T0 + timedelta(hours=3 * i),
                token_id=("tok_a", "tok_b", "tok_c")[i % 3],
                group=("default", "economy")[i % 2],
                endpoint="/v1/images/generations",
                model=("m1", "m2", "m3", "m1")[i % 4],
                stream=False,
                upstream_model="up",
                channel=None if i % 3 == 2 else ("ch1", "ch2")[i % 2],
                attempts=[Attempt("ch1", 0, 200, 12)],
                status="success" if i % 5 else "failed",
                http_status=200 if i % 5 else 502,
                usage=Usage(prompt_tokens=i, completion_tokens=2 * i, total_tokens=3 * i),
                image_count=i % 3,
                cost_micro_usd=1000 * i + 7,
                shortfall_micro_usd=i % 7,
            )
        )
    return out


DATA = dataset()


def insert(client: TestClient, records: list[UsageRecord]) -> None:
    async def work() -> None:
        async with runtime(client).sessionmaker.begin() as session:
            await repo.insert_usage_records(session, records)

    assert client.portal is not None
    client.portal.call(work)


def app_for(url: str, tmp: Path) -> Iterator[TestClient]:
    config = settings(tmp / "unused.db")
    config = config.model_copy(update={"database": config.database.model_copy(update={"url": url})})
    with running(config) as client:
        insert(client, DATA)
        yield client


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=[requires_postgres])])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("usage-api")
    if request.param == "sqlite":
        yield from app_for(f"sqlite+aiosqlite:///{tmp / 'gateway.db'}", tmp)
        return
    url = create_pg_database()
    try:
        yield from app_for(url, tmp)
    finally:
        drop_pg_database(url)


def get(client: TestClient, path: str, **params: Any) -> Any:
    resp = client.get(path, params=params, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    return resp.json()


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["request_id"] for r in records]


def expected(pred: Any) -> list[str]:
    return [r.request_id for r in reversed(DATA) if pred(r)]  # newest (last inserted) first


FILTERS = [
    ({"token": "tok_b"}, lambda r: r.token_id == "tok_b"),
    ({"model": "m1"}, lambda r: r.model == "m1"),
    ({"group": "economy"}, lambda r: r.group == "economy"),
    ({"channel": "ch2"}, lambda r: r.channel == "ch2"),
    ({"status": "failed"}, lambda r: r.status == "failed"),
    ({"from": "2026-03-02T00:00:00Z"}, lambda r: r.created_at >= datetime(2026, 3, 2, tzinfo=UTC)),
    ({"to": "2026-03-02"}, lambda r: r.created_at < datetime(2026, 3, 2, tzinfo=UTC)),
    (
        {"from": str(int(NOON_2.timestamp())), "to": "2026-03-03T12:00:00+00:00"},  # Unix seconds, ISO
        lambda r: NOON_2 <= r.created_at < NOON_2 + timedelta(days=1),
    ),
    ({"token": "tok_a", "model": "m1", "status": "success"},
     lambda r: (r.token_id, r.model, r.status) == ("tok_a", "m1", "success")),
]  # fmt: skip


@pytest.mark.parametrize(("params", "pred"), FILTERS, ids=[str(p) for p, _ in FILTERS])
def test_record_filters(client: TestClient, params: dict[str, str], pred: Any) -> None:
    body = get(client, "/admin/usage/records", limit=1000, **params)
    want = expected(pred)
    assert want, "the dataset must exercise the filter"
    assert ids(body["data"]) == want
    assert body["next_cursor"] is None


def test_record_fields(client: TestClient) -> None:
    [row] = get(client, "/admin/usage/records", limit=1)["data"]
    assert set(row) == set(usage_api.FIELDS)
    assert row["request_id"] == "req-29"
    assert row["created_at"] == (T0 + timedelta(hours=87)).isoformat()
    assert row["attempts"] == [{"channel": "ch1", "key_index": 0, "status": 200, "duration_ms": 12}]
    assert isinstance(row["cost_micro_usd"], int) and row["cost_micro_usd"] == 29_007
    assert (row["prompt_tokens"], row["total_tokens"], row["usage_estimated"]) == (29, 87, False)


def test_cursor_paging_walks_every_record_once(client: TestClient) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        body = get(client, "/admin/usage/records", **params)
        seen += ids(body["data"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(body["data"]) == 4
    assert seen == expected(lambda r: True)
    assert pages == 8  # 7 full pages of 4, then the last 2


def test_cursor_paging_with_a_filter(client: TestClient) -> None:
    first = get(client, "/admin/usage/records", limit=3, token="tok_c")
    second = get(client, "/admin/usage/records", limit=3, token="tok_c", cursor=first["next_cursor"])
    assert ids(first["data"]) + ids(second["data"]) == expected(lambda r: r.token_id == "tok_c")[:6]


KEYS = {
    "model": lambda r: r.model,
    "token": lambda r: r.token_id,
    "group": lambda r: r.group,
    "channel": lambda r: r.channel,
    "day": lambda r: r.created_at.date().isoformat(),
    "hour": lambda r: r.created_at.strftime("%Y-%m-%dT%H:00:00Z"),
}


@pytest.mark.parametrize("group_by", list(KEYS))
def test_summary_totals_equal_the_sums_of_the_records(client: TestClient, group_by: str) -> None:
    body = get(client, "/admin/usage/summary", group_by=group_by, **{"from": "2026-03-01T06:00:00Z"})
    chosen = [r for r in DATA if r.created_at >= datetime(2026, 3, 1, 6, tzinfo=UTC)]
    want: dict[Any, dict[str, int]] = {}
    for r in chosen:
        row = want.setdefault(
            KEYS[group_by](r), dict.fromkeys(("requests", "errors", "images", "tokens", "cost"), 0)
        )
        row["requests"] += 1
        row["errors"] += r.status == "failed"
        row["images"] += r.image_count
        row["tokens"] += r.usage.total_tokens
        row["cost"] += r.cost_micro_usd
    got = {
        d["key"]: {"requests": d["requests"], "errors": d["errors"], "images": d["images"],
                   "tokens": d["total_tokens"], "cost": d["cost_micro_usd"]}
        for d in body["data"]
    }  # fmt: skip
    assert got == want
    total = body["total"]
    assert total["requests"] == len(chosen)
    assert total["errors"] == sum(r.status == "failed" for r in chosen) > 0
    assert total["cost_micro_usd"] == sum(r.cost_micro_usd for r in chosen)
    assert total["total_tokens"] == sum(r.usage.total_tokens for r in chosen)
    assert total["shortfall_micro_usd"] == sum(r.shortfall_micro_usd for r in chosen)


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/admin/usage/summary", {"group_by": "nope"}, "group_by"),
        ("/admin/usage/summary", {}, "group_by"),
        ("/admin/usage/records", {"from": "yesterday"}, "from"),
        ("/admin/usage/records", {"to": "2026-13-01"}, "to"),
        ("/admin/usage/records", {"cursor": "abc"}, "cursor"),
        ("/admin/usage/records", {"limit": 0}, "limit"),
        ("/admin/usage/records", {"status": "maybe"}, "status"),
        ("/admin/usage/records", {"format": "xml"}, "format"),
        ("/admin/usage/records", {"cursor": "\u00b2"}, "cursor"),  # a digit to str.isdigit, not to int()
        ("/admin/usage/records", {"cursor": "9" * 19}, "cursor"),  # past the largest id a database keeps
        ("/admin/usage/records", {"from": "0001-01-01T00:00:00+01:00"}, "from"),  # before year 1 in UTC
        ("/admin/usage/summary", {"group_by": "day", "to": "9999-12-31T23:00:00-05:00"}, "to"),
        ("/admin/usage/records", {"token": "tok\x00"}, "token"),  # PostgreSQL text holds no NUL
        ("/admin/usage/summary", {"group_by": "model", "model": "m\x00"}, "model"),
    ],
)
def test_bad_parameters_are_400(client: TestClient, path: str, params: dict[str, Any], param: str) -> None:
    resp = client.get(path, params=params, headers=ADMIN)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param


def test_usage_api_needs_the_admin_token(client: TestClient) -> None:
    assert client.get("/admin/usage/records").status_code == 401
    assert (
        client.get("/admin/usage/summary?group_by=model", headers={"Authorization": "Bearer x"}).status_code
        == 401
    )


def test_csv_of_10000_records_streams_in_bounded_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: list[int] = []
    real = repo.usage_records_page

    async def counting(*args: Any, **kwargs: Any) -> Any:
        rows = await real(*args, **kwargs)
        fetched.append(len(rows))
        return rows

    monkeypatch.setattr(repo, "usage_records_page", counting)
    many = [
        UsageRecord(f"bulk-{i:05d}", T0, "tok_bulk", "default", "/v1/images/generations", "m1", False,
                    status="success", http_status=200, image_count=1, cost_micro_usd=i)
        for i in range(10_000)
    ]  # fmt: skip
    with running(settings(tmp_path / "gateway.db")) as client:
        for start in range(0, len(many), 2000):
            insert(client, many[start : start + 2000])
        chunks = []
        with client.stream("GET", "/admin/usage/records?format=csv&token=tok_bulk", headers=ADMIN) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/csv")
            chunks = list(resp.iter_bytes())
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert rows[0] == list(usage_api.FIELDS)
    assert [r[0] for r in rows[1:]] == [f"bulk-{i:05d}" for i in reversed(range(10_000))]
    assert sum(int(r[usage_api.FIELDS.index("cost_micro_usd")]) for r in rows[1:]) == sum(range(10_000))
    # Never all loaded: 20 queries of at most CSV_BATCH rows (plus the empty one that ends it),
    # each sent on before the next is read.
    assert max(fetched) == usage_api.CSV_BATCH and len(fetched) == 10_000 // usage_api.CSV_BATCH + 1
    assert len(chunks) >= len(fetched) - 1
