"""The metrics helpers: the multiprocess directory `gateway serve --workers N` prepares, bounded labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import metrics


def test_a_fresh_directory_is_made_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    created = metrics.prepare_multiprocess_dir()
    try:
        assert created is not None and created.is_dir() and not any(created.iterdir())
        assert metrics.multiprocess_dir() == str(created)
    finally:
        metrics.remove_dir(created)
    assert created is not None and not created.exists()
    assert metrics.multiprocess_dir() is None  # the process is back to one registry in memory


def test_an_operators_directory_is_cleaned_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not ours")
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    assert metrics.prepare_multiprocess_dir() is None  # not ours to remove later
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_model_labels_are_bounded_by_the_catalog() -> None:
    labels = metrics.ModelLabels()
    first, second = object(), object()
    assert labels.label("a", first, lambda: ["a", "b"]) == "a"
    assert labels.label("zzz", first, lambda: ["a", "b"]) == metrics.OTHER
    assert labels.label("", first, lambda: ["a"]) == ""
    assert labels.label("c", second, lambda: ["c"]) == "c"  # a reload's new catalog is read again


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [(None, "upstream_timeout", "timeout"), (None, "connection_error", "error"), (429, None, "429"),
     (404, "x", "4xx"), (503, None, "5xx"), (200, None, "error")],
)  # fmt: skip
def test_attempt_outcomes_are_a_short_list(status: int | None, code: str | None, expected: str) -> None:
    assert metrics.outcome(status, code) == expected
