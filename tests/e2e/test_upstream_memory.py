"""Hostile upstream answers against a real gateway process: an answer that announces 300 MB, one that
sends 50 MB without a length, a stream line that never ends. With `limits.max_upstream_response_mb: 8`
each is refused at 8 MB, fails over to the healthy channel (or is a 502 when there is none), and the
process's memory stays where it was: nothing of the failed reads is allocated or kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.fakes.hostile import CHAT_CHUNKS, HostileUpstream, Scripted, sse
from tests.gateway_process import GatewayProcess

MB = 1024 * 1024
BLOCK = b"x" * (1024 * 1024)
OPEN = [b'{"choices": ["']
HOSTILE = {
    "announces 300 MB, sends 50, closes": Scripted(length=300 * MB, parts=OPEN, fill=(BLOCK, 50)),
    "50 MB chunked": Scripted(chunked=True, parts=OPEN, fill=(BLOCK, 50)),
    "50 MB until close": Scripted(length=None, parts=OPEN, fill=(BLOCK, 50)),
}
ENDLESS_LINE = Scripted(
    content_type="text/event-stream", length=None, parts=[sse(CHAT_CHUNKS[1], done=False), b"data: {"],
    fill=(BLOCK, 50),
)  # fmt: skip


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


@pytest.fixture(scope="module")
def upstream() -> Iterator[HostileUpstream]:
    with HostileUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    upstream: HostileUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, str]]:
    def channel(name: str, segment: str, models: list[str], priority: int) -> dict[str, object]:
        return {"name": name, "kind": "openai", "base_url": upstream.base_url(segment),
                "api_keys": [f"sk-{name}"], "models": models, "priority": priority}  # fmt: skip

    config = {
        "channels": [
            channel("hostile", "hostile", ["fo-chat"], 10),
            channel("healthy", "ok", ["fo-chat"], 0),
            channel("only", "hostile", ["only-chat"], 0),
        ],
        "limits": {"max_upstream_response_mb": 8},
        "retry": {"failures_to_cooldown": 1000},
    }
    proc = GatewayProcess(tmp_path_factory.mktemp("gw-memory"), config)
    token = proc.create_token("memory")
    proc.start()
    yield proc, token
    proc.stop()


def test_hostile_answers_are_refused_and_leave_memory_where_it_was(
    upstream: HostileUpstream, gateway: tuple[GatewayProcess, str]
) -> None:
    proc, token = gateway
    assert proc.proc is not None
    pid = proc.proc.pid
    headers = {"Authorization": f"Bearer {token}"}

    def chat(model: str, **extra: object) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
        return httpx.post(f"{proc.url}/v1/chat/completions", json=body, headers=headers, timeout=60)

    for _ in range(3):  # warm up: imports, pools, first allocations
        assert chat("fo-chat").status_code == 200
    rss_before, peak_before = status_kb(pid, "VmRSS"), status_kb(pid, "VmHWM")

    for answer in HOSTILE.values():
        upstream.script("hostile", answer)
        for _ in range(3):
            resp = chat("fo-chat")
            assert resp.status_code == 200, resp.text  # failed over to the healthy channel
            resp = chat("only-chat")
            assert resp.status_code == 502, resp.text
            assert resp.json()["error"]["code"] == "upstream_response_too_large"
    upstream.script("hostile", ENDLESS_LINE)
    for _ in range(3):
        resp = chat("only-chat", stream=True)
        assert resp.status_code == 200
        assert b'"upstream_response_too_large"' in resp.content and b"[DONE]" not in resp.content

    grown_mb = (status_kb(pid, "VmRSS") - rss_before) / 1024
    peak_mb = (status_kb(pid, "VmHWM") - peak_before) / 1024
    assert grown_mb < 40, f"RSS grew by {grown_mb:.0f} MB"
    assert peak_mb < 64, f"peak RSS rose by {peak_mb:.0f} MB"
    assert chat("fo-chat").status_code == 200  # and it still serves
