"""§4.7 against a real gateway process: a client whose read timeout is shorter than the call completes
it thanks to the spaces (and the same client without keepalive times out, so the timeout is real); an
error after the headers arrives as the §2 body; a fast call stays plain JSON with its real status.
Scaled down from "5 s read timeout, 12 s call, 2 s interval" to 1 s, 3 s and 0.3 s: the same property."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx
import orjson
import pytest

from tests.gateway_process import GatewayProcess

SLOW_MS = 3000
READ_TIMEOUT = httpx.Timeout(30, read=1.0)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str]]:
    config = {
        "server": {"nonstream_keepalive_seconds": 0.3},  # for every non-stream call, unless the client says
        "channels": [
            {"name": "slow", "kind": "mock", "models": ["slow-image", "slow-chat"],
             "mock": {"latency_ms": SLOW_MS}},
            {"name": "late-failure", "kind": "mock", "models": ["late-failure"],
             "mock": {"latency_ms": 1500, "failure_rate": 1.0}},
            {"name": "fast", "kind": "mock", "models": ["fast-image", "fast-chat"]},
        ],
    }  # fmt: skip
    proc = GatewayProcess(tmp_path_factory.mktemp("keepalive"), config)
    token = proc.create_token("keepalive")
    proc.start()
    yield proc, token
    proc.stop()


def post(
    gw: tuple[GatewayProcess, str], path: str, body: dict[str, object], **headers: str
) -> httpx.Response:
    proc, token = gw
    return httpx.post(f"{proc.url}{path}", json=body, timeout=READ_TIMEOUT,
                      headers={"Authorization": f"Bearer {token}", **headers})  # fmt: skip


def test_a_client_with_a_short_read_timeout_completes_a_long_image_call(
    gateway: tuple[GatewayProcess, str],
) -> None:
    body = {"model": "slow-image", "prompt": "a lighthouse"}
    resp = post(
        gateway, "/v1/images/generations", body, **{"x-gateway-keepalive": "1"}
    )  # 1: the configured 0.3 s
    assert resp.status_code == 200
    assert resp.content.startswith(b" ") and resp.content.lstrip().startswith(b"{")
    assert resp.headers["content-type"] == "application/json" and resp.headers["x-request-id"]
    answer = orjson.loads(resp.content)
    assert answer["data"][0]["b64_json"]
    # The same call without keepalive (the header's 0 turns it off) outlasts the client's read timeout.
    with pytest.raises(httpx.ReadTimeout):
        post(gateway, "/v1/images/generations", body, **{"x-gateway-keepalive": "0"})


def test_chat_keeps_the_connection_alive_too(gateway: tuple[GatewayProcess, str]) -> None:
    body = {"model": "slow-chat", "messages": [{"role": "user", "content": "hello"}]}
    resp = post(gateway, "/v1/chat/completions", body)  # the configured interval applies to everyone
    assert resp.status_code == 200 and resp.content.startswith(b" ")
    assert orjson.loads(resp.content)["choices"][0]["message"]["content"] == "Mock reply to: hello"


def test_an_error_after_the_headers_arrives_as_the_error_object(gateway: tuple[GatewayProcess, str]) -> None:
    resp = post(gateway, "/v1/images/generations", {"model": "late-failure", "prompt": "x"})
    assert resp.status_code == 200  # the status line went out before the failure
    assert resp.content.startswith(b" ")
    error = orjson.loads(resp.content)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "upstream_error"


def test_a_fast_call_stays_plain_json_with_its_real_status(gateway: tuple[GatewayProcess, str]) -> None:
    wide = {"x-gateway-keepalive": "5"}  # a 5 s interval: these calls end long before it
    ok = post(gateway, "/v1/images/generations", {"model": "fast-image", "prompt": "x"}, **wide)
    assert ok.status_code == 200 and ok.content.startswith(b"{")
    assert ok.headers["content-length"] == str(len(ok.content))
    missing = post(gateway, "/v1/images/generations", {"model": "no-such-model", "prompt": "x"}, **wide)
    assert missing.status_code == 404 and missing.content.startswith(b"{")
    assert missing.json()["error"]["code"] == "model_not_found"
    chat = post(gateway, "/v1/chat/completions",
                {"model": "fast-chat", "messages": [{"role": "user", "content": "hi"}]}, **wide)  # fmt: skip
    assert chat.status_code == 200 and chat.content.startswith(b"{")
