"""The README quick start on a fresh directory: `gateway demo` with no config file, then the exact curl
commands and OpenAI SDK snippet it prints (§8.1 defaults, §8.2 `demo`): a chat reply, and a chat answer to
`mock-image` whose image is stored and shown by its URL (§3.2, the flagship feature)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from openai import OpenAI

from tests.fakes.server import free_port

EXPECTED_REPLY = "Mock reply to: Hello!"
IMAGE_PROMPT = "A lighthouse at dusk"


@dataclass
class Demo:
    proc: subprocess.Popen[bytes]
    cwd: Path
    port: int
    output: Path
    env: dict[str, str]

    def text(self) -> str:
        return self.output.read_text(errors="replace")


def _env() -> dict[str, str]:
    # Nothing from the caller's GATEWAY_* or OpenAI settings, and never a proxy for loopback.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OPENAI_"))}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("the demo did not stop on SIGTERM")
    return proc.returncode


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    cwd = tmp_path_factory.mktemp("fresh")
    port = free_port()
    output = cwd.parent / f"{cwd.name}-demo.log"  # outside cwd: the directory stays as a user's would
    env = _env()
    with output.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "demo", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    demo = Demo(proc, cwd, port, output, env)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the demo exited early:\n{demo.text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the demo did not answer /healthz:\n{demo.text()}")
            time.sleep(0.1)
        yield demo
    finally:
        _stop(proc)


def _token(demo: Demo) -> str:
    match = re.search(r"Demo token \(shown once\): (sk-[A-Za-z0-9_-]{48})\s", demo.text())
    assert match, demo.text()
    return match.group(1)


def _curl_commands(demo: Demo) -> list[str]:
    """The curl commands printed between "Try it:" and the SDK snippet, each joined into one line."""
    text = demo.text()
    block = text[text.index("Try it:") : text.index("Or with the OpenAI SDK")].replace("\\\n", " ")
    commands = [line.strip() for line in block.splitlines() if line.strip().startswith("curl ")]
    assert len(commands) == 2, block
    return commands


def _run_curl(demo: Demo, command: str) -> dict[str, object]:
    argv = shlex.split(command)
    assert argv[0] == "curl" and _token(demo) in " ".join(argv)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=demo.env)
    assert out.returncode == 0, out.stderr
    body: dict[str, object] = json.loads(out.stdout)
    return body


def _stored_png(demo: Demo, url: str) -> bytes:
    assert url.startswith(f"http://127.0.0.1:{demo.port}/files/"), url
    resp = httpx.get(url, timeout=10)
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png", url
    assert (demo.cwd / "data" / "images" / url.split("/files/", 1)[1]).is_file()
    return resp.content


def _sdk_snippet(demo: Demo) -> str:
    text = demo.text()
    lines = text[text.index("Or with the OpenAI SDK") :].splitlines()[1:]
    snippet: list[str] = []
    for line in lines:
        if not line.startswith("  "):
            break
        snippet.append(line)
    assert snippet, text
    return textwrap.dedent("\n".join(snippet))


def test_demo_prints_a_token_and_uses_the_default_paths(demo: Demo) -> None:
    token = _token(demo)
    assert len(token) == 51
    base = f"http://127.0.0.1:{demo.port}"
    assert f"curl {base}/v1/chat/completions" in demo.text()
    assert f'base_url="{base}/v1"' in demo.text()
    # No config file anywhere: the embedded default database path, relative to where it was started.
    assert (demo.cwd / "data" / "gateway.db").is_file()
    assert not (demo.cwd / "config.yaml").exists()

    me = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.status_code == 200 and me.json()["name"] == "demo" and me.json()["group"] == "default"
    ready = httpx.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_printed_curl_command_works(demo: Demo) -> None:
    body: Any = _run_curl(demo, _curl_commands(demo)[0])
    assert body["object"] == "chat.completion"
    assert body["model"] == "mock-chat"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": EXPECTED_REPLY}
    assert body["usage"]["total_tokens"] > 0


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_printed_image_chat_command_answers_an_image_url(demo: Demo) -> None:
    body: Any = _run_curl(demo, _curl_commands(demo)[1])
    assert body["model"] == "mock-image"
    message = body["choices"][0]["message"]
    match = re.fullmatch(rf"Mock image for: {IMAGE_PROMPT}\n\n!\[image\]\((\S+)\)", message["content"])
    assert match, message["content"]
    url = match.group(1)
    assert message["images"] == [{"type": "image_url", "image_url": {"url": url}}]
    assert _stored_png(demo, url).startswith(b"\x89PNG")


def test_the_printed_sdk_snippet_works(demo: Demo) -> None:
    snippet = _sdk_snippet(demo)
    assert "from openai import OpenAI" in snippet and _token(demo) in snippet
    out = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60, env=demo.env
    )
    assert out.returncode == 0, out.stderr
    reply, url = out.stdout.strip().splitlines()
    assert reply == EXPECTED_REPLY
    assert _stored_png(demo, url).startswith(b"\x89PNG")


def test_the_sdk_as_the_readme_shows_it(demo: Demo) -> None:
    with OpenAI(base_url=f"http://127.0.0.1:{demo.port}/v1", api_key=_token(demo), max_retries=0) as client:
        reply = client.chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": "Hello!"}]
        )
        assert reply.choices[0].message.content == EXPECTED_REPLY
        assert reply.choices[0].finish_reason == "stop"
        models = {m.id for m in client.models.list()}
        assert {"mock-chat", "mock-image"} <= models
        stream = client.chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": "Hello!"}], stream=True
        )
        with stream:
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == EXPECTED_REPLY


def test_the_demo_stops_cleanly_on_sigterm(demo: Demo) -> None:
    """Last in the module: the shared demo process is stopped here and shuts down gracefully."""
    # uvicorn re-raises the captured signal once shut down, so -SIGTERM is a clean exit too.
    assert _stop(demo.proc) in (0, -signal.SIGTERM), demo.text()
    log = demo.text()
    assert "Application shutdown complete" in log and "Finished server process" in log, log
    assert "Traceback" not in log and '"level":"ERROR"' not in log, log
