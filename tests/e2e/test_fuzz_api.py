"""Schemathesis against the live gateway's own /openapi.json: a real `gateway serve` process with the
built-in mock upstream, a client token and the admin token.

For each documented operation, cases generated from the document (valid ones and invalid ones):
no 5xx; every error answer in the §2 shape; answers as documented (status, content type, schema,
`x-request-id`); no error in the gateway's log; and after each operation's cases the gateway still
answers normal chat and image requests. The admin cases that change server state are undone or are
harmless (see `restore`), so each check sees the gateway as configured. Bounded: a fixed seed,
derandomized generation and a capped number of examples per operation, so the run fits the suite's budget.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import is_dataclass, replace
from pathlib import Path
from typing import Any

import httpx2 as httpx
import hypothesis.strategies as st
import pytest
import schemathesis
from schemathesis import Case

from gateway.app import create_app
from gateway.providers.mock import render_png
from gateway.settings import Settings
from tests.gateway_process import ADMIN_TOKEN, GatewayProcess

SEED = 20260601
MAX_EXAMPLES = 40  # generated cases per operation, besides the coverage phase's (the module prints totals)
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "ignored_auth",
    "negative_data_rejection",
    "unsupported_method",
    "missing_required_header",
    "allow_header_conformance",
)
ERROR_KEYS = {"message", "type", "param", "code"}
MODELS = {"chat": "mock-chat", "images": "mock-image"}
PNG_DATA_URL = "data:image/png;base64," + base64.b64encode(render_png("fuzz", 8)).decode()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("fuzz")
    config = {
        "groups": {"default": {"ratio": 1.0}, "economy": {"ratio": 0.5}},
        "channels": [
            {"name": "mock", "kind": "mock", "models": ["mock-chat", "mock-image"]},
            # Switched off in the file: enabling it at run time is refused (400), and it serves nothing.
            {"name": "parked", "kind": "mock", "models": ["parked-model"], "enabled": False},
        ],
        "storage": {"backend": "local", "local": {"root": str(tmp / "images")}},
    }
    proc = GatewayProcess(tmp, config)
    proc.cli("migrate")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Counter[tuple[str, int]]]:
    """Cases run per operation and answer status, written to the terminal when the module ends."""
    cases: Counter[tuple[str, int]] = Counter()
    yield cases
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not cases:
        return
    by_operation: dict[str, Counter[int]] = {}
    for (label, status), n in cases.items():
        by_operation.setdefault(label, Counter())[status] += n
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\nschemathesis: {sum(cases.values())} cases on {len(by_operation)} operations")
        for label, statuses in sorted(by_operation.items()):
            counts = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
            reporter.write_line(f"  {sum(statuses.values()):5d}  {label}  ({counts})")


class LogWatch:
    """The gateway's log lines at level ERROR (an unhandled exception, a crash) since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def errors(self) -> list[str]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            new = f.read()
        new = new[: new.rfind(b"\n") + 1]  # whole lines only: the rest is read next time
        self.offset += len(new)
        bad = (b'"level":"ERROR"', b'"level":"CRITICAL"', b"Traceback")
        return [line.decode(errors="replace") for line in new.splitlines() if any(b in line for b in bad)]


@pytest.fixture(scope="module")
def log(live: GatewayProcess) -> LogWatch:
    return LogWatch(live.log_path)


@pytest.fixture(scope="module")
def probe(live: GatewayProcess) -> Iterator[httpx.Client]:
    """A client with a token the fuzzer never sees (it may disable or delete the tokens it can reach)."""
    headers = {"Authorization": f"Bearer {live.create_token('probe')}"}
    # Idle connections expire before the server's keep-alive (uvicorn: 5 s) closes them: an operation's cases
    # can take longer than that, and a request sent as the server closes the connection is lost.
    limits = httpx.Limits(keepalive_expiry=2.0)
    with httpx.Client(base_url=live.url, headers=headers, timeout=20, limits=limits) as client:
        yield client


def still_serves(probe: httpx.Client) -> None:
    chat = {"model": "mock-chat", "messages": [{"role": "user", "content": "ping"}]}
    resp = probe.post("/v1/chat/completions", json=chat)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "Mock reply to: ping"
    image = {"model": "mock-image", "prompt": "ping", "response_format": "url"}
    resp = probe.post("/v1/images/generations", json=image)
    assert resp.status_code == 200, resp.text
    assert probe.get(resp.json()["data"][0]["url"]).status_code == 200


@pytest.fixture
def afterwards(probe: httpx.Client, log: LogWatch) -> Iterator[None]:
    """Once an operation's cases have run (one test item each): the gateway still serves normal
    requests, chat and images, and logged no error meanwhile."""
    yield
    still_serves(probe)
    errors = log.errors()
    assert not errors, f"the gateway logged an error: {errors}"


@pytest.fixture(scope="module")
def fuzz_token(live: GatewayProcess) -> str:
    return live.create_token("fuzz", allowed_groups="economy")


# A token per admin method the cases change, rotate or delete (one deleted early would starve the others).
VICTIMS: dict[str, str] = {}


@pytest.fixture(scope="module")
def victims(live: GatewayProcess) -> Iterator[None]:
    for method in ("get", "patch", "delete", "post"):
        created = live.admin("POST", "/admin/tokens", json={"name": f"victim-{method}"})
        assert created.status_code == 201, created.text
        VICTIMS[method] = created.json()["id"]
    yield
    VICTIMS.clear()


def _schema() -> Any:
    """The document the gateway serves, built in process (the live one is checked to be the same):
    pytest needs the operations when it collects the tests, before the gateway runs."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                # The test sends the token itself; `ignored_auth` probes requests without one.
                "with-security-parameters": False,
            },
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "request-timeout": 30,
            "suppress-health-check": ["all"],  # a busy machine is slow; the bounds above keep the run short
        }
    )
    loaded = schemathesis.openapi.from_dict(DOCUMENT, config=config)

    @loaded.hook
    def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
        """Steer generated bodies past routing into the pipeline: most name a model the mock serves,
        and JSON edits may carry a real image. Only valid values are replaced, so a negative case keeps
        what made it invalid."""
        tag = (context.operation.tags or [""])[0] if context.operation else ""
        if is_dataclass(body) and isinstance(getattr(body, "body", None), dict):  # a multipart form
            return steer(tag, body.body).map(lambda fields: replace(body, body=fields))
        return steer(tag, body)

    @loaded.hook
    def flatmap_path_parameters(context: Any, parameters: dict[str, Any]) -> st.SearchStrategy[Any]:
        """Most admin cases name a real token or channel, so they reach past the 404."""
        token_id = (parameters or {}).get("token_id")
        victim = VICTIMS.get(context.operation.method.lower()) if context.operation else None
        if isinstance(token_id, str) and token_id and victim:
            return st.sampled_from([{**parameters, "token_id": victim}, parameters])
        name = (parameters or {}).get("name")
        if isinstance(name, str) and name:
            return st.sampled_from([{**parameters, "name": n} for n in CHANNELS] + [parameters])
        return st.just(parameters)

    @loaded.hook
    def flatmap_query(context: Any, query: Any) -> st.SearchStrategy[Any]:
        """Usage cases often carry real times and cursors, so they reach the database and not only the
        400s. Only schema-valid values are replaced: a negative case keeps what made it invalid."""
        if not isinstance(query, dict) or not context.operation or "/usage/" not in context.operation.path:
            return st.just(query)
        steered = dict(query)
        for name, (choices, longest) in USAGE_QUERY.items():
            value = query.get(name)
            if isinstance(value, str) and len(value) <= longest:
                steered[name] = choices[len(value) % len(choices)]
        return st.sampled_from([steered, query])

    return loaded


DOCUMENT = create_app(Settings()).api.openapi()
schema = _schema()


CHANNELS = ("mock", "parked")  # the config's: one serving, one switched off in the file
NOW = time.time()
USAGE_QUERY = {  # name: (valid values, the schema's maxLength)
    "from": (("2020-01-01", "2020-01-01T00:00:00Z", "1577836800"), 64),
    "to": (("2100-01-01", f"{NOW + 3600:.0f}", "2100-01-01T00:00:00+02:00"), 64),
    "cursor": (("9000000000", "2"), 32),
}


def steer(tag: str, body: Any) -> st.SearchStrategy[Any]:
    if tag == "admin" and isinstance(body, dict):
        return st.sampled_from([declared_groups(body), body])
    if not (
        isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"] and tag in MODELS
    ):
        return st.just(body)
    served = {**body, "model": MODELS[tag]}
    choices = [served, body]  # Hypothesis favours the first choice
    images = body.get("images")
    if isinstance(images, list) and images and all(isinstance(i, dict) for i in images):
        choices.insert(0, {**served, "images": [{**images[0], "image_url": PNG_DATA_URL}, *images[1:]]})
    return st.sampled_from(choices)


def declared_groups(body: dict[str, Any]) -> dict[str, Any]:
    """A token body whose groups exist (random names are refused before the database is reached)."""
    steered = dict(body)
    if isinstance(body.get("group"), str) and body["group"]:
        steered["group"] = "economy"
    groups = body.get("allowed_groups")
    if isinstance(groups, list) and all(isinstance(g, str) for g in groups):
        steered["allowed_groups"] = ["economy", "default"][: len(groups)]
    return steered


def restore(case: Case, live: GatewayProcess) -> None:
    """Undo what a case changed that later checks depend on.

    - `POST /admin/channels/{name}/{action}`: a case may switch off `mock`, the one channel that serves
      the models: every later chat and image request (the other cases, `still_serves`) would get 503.
      It is switched back on after each case of that operation, so both switches are fuzzed for real.
    - `POST /admin/reload` needs nothing: it re-reads the same config file, which changes no setting
      (`needs_restart` is empty) and keeps run-time switches; it only gives keys disabled by an
      upstream's 401/403 another chance, and the mock upstream never refuses one.
    """
    if case.operation.path == "/admin/channels/{name}/{action}":
        resp = live.admin("POST", "/admin/channels/mock/enable")
        assert resp.status_code == 200 and resp.json()["enabled"] is True, resp.text


def check_section_2(case: Case, response: Any) -> None:
    """Every error answer: `{"error": {"message": str, "type": str, "param": str|null, "code": str|null}}`."""
    if response.status_code < 400:
        return
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), response.text
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    if case.path != "/readyz":  # readiness adds its checks beside the error
        assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_KEYS, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error


def test_the_live_gateway_serves_the_fuzzed_document(live: GatewayProcess) -> None:
    assert httpx.get(f"{live.url}/openapi.json").json() == DOCUMENT


@schema.parametrize()
def test_fuzz_api(
    case: Case,
    live: GatewayProcess,
    fuzz_token: str,
    log: LogWatch,
    tally: Counter[tuple[str, int]],
    victims: None,
    afterwards: None,
) -> None:
    key = ADMIN_TOKEN if case.path.startswith("/admin") else fuzz_token
    try:
        response = case.call_and_validate(base_url=live.url, headers={"Authorization": f"Bearer {key}"})
    finally:
        restore(case, live)
    tally[case.operation.label, response.status_code] += 1
    check_section_2(case, response)
    errors = log.errors()  # an error logged after the answer was sent shows up at the next look
    assert not errors, f"the gateway logged an error: {errors}"
