"""config.example.yaml shows every key with its default: loaded as is, it gives the built-in defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.yaml"


def test_the_example_file_holds_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_ADMIN_TOKEN", raising=False)
    example, defaults = load_settings(EXAMPLE), Settings()
    for section in ("server", "jobs", "metrics", "logging", "usage", "database", "storage", "redis", "retry"):
        assert getattr(example, section) == getattr(defaults, section), section
    assert "not served yet" not in EXAMPLE.read_text()  # keepalive and /metrics are served now
