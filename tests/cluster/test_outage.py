"""Redis outages: skipped for a back-off after a failure, logged once a minute and not per call."""

from __future__ import annotations

import pytest

from gateway.cluster.link import Outage


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gateway.cluster"]


def test_backoff_after_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    outage = Outage(backoff_seconds=5, log_every_seconds=60, clock=clock)
    assert outage.usable()
    outage.failed("rate limits", ConnectionError("refused"))
    assert outage.down and not outage.usable()
    clock.now += 4.9
    assert not outage.usable()
    clock.now += 0.1
    assert outage.usable()  # time to try again


def test_one_log_line_per_minute_while_down_and_one_when_back(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    outage = Outage(backoff_seconds=5, log_every_seconds=60, clock=clock)
    with caplog.at_level("INFO", logger="gateway.cluster"):
        for _ in range(100):
            outage.failed("rate limits", ConnectionError("refused"))
        assert len(messages(caplog)) == 1
        assert "ConnectionError: refused" in messages(caplog)[0]
        clock.now += 60
        outage.failed("publish", TimeoutError())
        assert len(messages(caplog)) == 2
        outage.ok()
        outage.ok()
        assert len(messages(caplog)) == 3 and "reachable again" in messages(caplog)[2]
        outage.failed("publish", TimeoutError())  # a new outage is told at once
        assert len(messages(caplog)) == 4
