"""Smoke test of the benchmark's parts: fake upstream, reference proxy and Python load driver, over loopback;
and the choice of a representative round."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from bench.__main__ import BENCH
from bench.drivers import LoadResult, LoadSpec, run_load
from bench.measure import Measurement
from bench.procs import Children, free_port, http_call, wait_until_ready
from bench.report import representative
from bench.runner import parse_args, plan, profiled
from bench.targets import BENCH_DIR, parse_token_key

UPSTREAM_KEY = "sk-upstream-test"
PROXY_KEY = "sk-proxy-test"
CHAT: dict[str, object] = {"model": "bench-model", "messages": [{"role": "user", "content": "Say hello."}]}


@pytest.fixture(scope="module")
def proxy_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("bench-logs")
    with Children() as children:
        up_port, proxy_port = free_port(), free_port()
        upstream = children.spawn(
            [sys.executable, str(BENCH_DIR / "fake_upstream.py"), "--port", str(up_port), "--chunks", "5"]
            + ["--key", UPSTREAM_KEY, "--lifetime", "120"],
            log=logs / "upstream.log",
        )
        wait_until_ready(f"http://127.0.0.1:{up_port}/healthz", upstream, logs / "upstream.log", timeout=20)
        proxy = children.spawn(
            [sys.executable, str(BENCH_DIR / "reference_proxy.py"), "--port", str(proxy_port)]
            + ["--upstream", f"http://127.0.0.1:{up_port}/v1", "--key", PROXY_KEY]
            + ["--upstream-key", UPSTREAM_KEY, "--lifetime", "120"],
            log=logs / "proxy.log",
        )
        wait_until_ready(f"http://127.0.0.1:{proxy_port}/healthz", proxy, logs / "proxy.log", timeout=20)
        yield f"http://127.0.0.1:{proxy_port}/v1/chat/completions"


def post(url: str, body: Mapping[str, object], key: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    return http_call("POST", url, json.dumps(body).encode(), headers)


def test_chat_completion_through_the_proxy(proxy_url: str) -> None:
    status, _, body = post(proxy_url, CHAT, PROXY_KEY)
    data = json.loads(body)
    assert status == 200
    assert data["object"] == "chat.completion" and data["model"] == "bench-model"
    assert data["choices"][0]["message"]["role"] == "assistant"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert (
        data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )


def test_stream_with_usage_through_the_proxy(proxy_url: str) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    status, headers, raw = post(proxy_url, body, PROXY_KEY)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = raw.decode().split("\n\n")
    assert all(e.startswith("data: ") for e in events if e)
    payloads = [e[len("data: ") :] for e in events if e]
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert len(chunks) == 5 + 1  # --chunks 5, then the usage chunk
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_keys_are_checked(proxy_url: str) -> None:
    status, _, body = post(proxy_url, CHAT, "sk-wrong")
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
    status, _, _ = post(proxy_url, CHAT, None)
    assert status == 401


def test_python_driver_counts_requests_and_errors(proxy_url: str, tmp_path: Path) -> None:
    def load(key: str) -> LoadResult:
        spec = LoadSpec(
            proxy_url, connections=4, duration_s=1.0, timeout_s=5, body=json.dumps(CHAT), bearer=key
        )
        with Children() as children:
            return run_load(
                spec,
                driver="python",
                children=children,
                cpu=None,
                log=tmp_path / "load.log",
                python=sys.executable,
            )

    ok = load(PROXY_KEY)
    assert ok.requests > 10 and ok.errors == 0 and 0 < ok.p50_ms <= ok.p99_ms
    refused = load("sk-wrong")
    assert refused.requests > 10 and refused.errors == refused.requests
    assert refused.error_detail == {"status_401": refused.requests}


def result(rps: float, errors: int = 0) -> LoadResult:
    return LoadResult(
        "wrk", requests=int(rps * 10), duration_s=10, rps=rps, p50_ms=1, p99_ms=2, max_ms=3, errors=errors
    )


def test_representative_is_the_median_round() -> None:
    runs = [
        Measurement("small", "gateway", load=result(rps), round=i) for i, rps in enumerate((900, 100, 500))
    ]
    runs.append(Measurement("small", "reference", failure="boom"))
    chosen = representative(runs)
    assert [m.load.rps if m.load else None for m in chosen] == [500, None]


def test_token_key_from_cli_output() -> None:
    assert parse_token_key('{"id": 1, "name": "bench", "key": "sk-abc"}\n') == "sk-abc"
    assert parse_token_key('migrating...\n{"key": "sk-def"}\n') == "sk-def"
    with pytest.raises(RuntimeError):
        parse_token_key("created token 1\n")


def test_one_command_plans_every_scenario_and_the_profiles() -> None:
    args = parse_args(BENCH, ["--quick", "--profile", "small-chat,rehost-16mb"])
    scenarios = plan(BENCH, args)
    durations = {s.name: s.duration_s for s in scenarios}
    assert durations["small-chat"] == 3 and durations["pass-16mb"] == 4 and durations["slow-chat"] == 5
    assert {"scaling-1w", "scaling-2w", "gemini-4k"} <= set(durations)
    assert profiled(args, scenarios) == {"small-chat", "rehost-16mb"}
    with pytest.raises(SystemExit):
        profiled(parse_args(BENCH, ["--scenarios", "small-chat", "--profile", "rehost-16mb"]), scenarios[:1])
