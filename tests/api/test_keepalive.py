"""§4.7 keepalive answer: plain JSON with its real status when the call ends within the first interval;
else 200 and the headers, a space every interval, then the JSON (or the §2 error object) in the body.
The order of events is what is checked: the work is held until the test has seen the spaces it wants."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.keepalive import PAD, KeepaliveResponse, interval
from gateway.errors import UpstreamError
from gateway.settings import ServerSettings

RID = (b"x-request-id", b"req-1")


class Client:
    """A fake ASGI client: records what is sent, can wake the test after N spaces, can disconnect."""

    def __init__(self, pads_wanted: int = 0) -> None:
        self.sent: list[dict[str, Any]] = []
        self.pads_seen = asyncio.Event()
        self.pads_wanted = pads_wanted
        self.gone = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message.get("body") == PAD and sum(m.get("body") == PAD for m in self.sent) >= self.pads_wanted:
            self.pads_seen.set()

    async def receive(self) -> dict[str, str]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


async def answer_after(release: asyncio.Event, result: Response | BaseException) -> Response:
    await release.wait()
    if isinstance(result, BaseException):
        raise result
    return result


def respond(work: Any, seconds: float) -> KeepaliveResponse:
    response = KeepaliveResponse(work, seconds)
    response.raw_headers.append(RID)  # what the edge does
    return response


async def test_a_call_that_ends_before_the_first_interval_is_plain_json() -> None:
    client = Client()
    done = asyncio.Event()
    done.set()
    response = respond(
        answer_after(done, Response(b'{"ok":1}', status_code=201, media_type="application/json")), 60
    )
    await response({"type": "http"}, client.receive, client.send)
    start = client.sent[0]
    assert start["status"] == 201 and RID in start["headers"]
    assert client.bodies() == [b'{"ok":1}']
    assert response.status_code == 201  # what the metrics see


async def test_a_fast_error_keeps_its_real_status() -> None:
    client = Client()
    done = asyncio.Event()
    done.set()
    error = UpstreamError("upstream said no", status=429, code="rate_limited")
    await respond(answer_after(done, error), 60)({"type": "http"}, client.receive, client.send)
    assert client.sent[0]["status"] == 429 and RID in client.sent[0]["headers"]
    assert orjson.loads(client.bodies()[0]) == error.body()


async def test_a_long_call_gets_200_then_spaces_then_its_json() -> None:
    client = Client(pads_wanted=3)
    release = asyncio.Event()
    body = b'{"created":1,"data":[]}'
    work = answer_after(
        release, Response(body, media_type="application/json", headers={"x-gateway-warning": "w"})
    )
    running = asyncio.ensure_future(respond(work, 0.01)({"type": "http"}, client.receive, client.send))
    await client.pads_seen.wait()
    release.set()
    await running
    start = client.sent[0]
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert (b"content-type", b"application/json") in start["headers"] and RID in start["headers"]
    bodies = client.bodies()
    assert bodies[:3] == [PAD, PAD, PAD] and set(bodies[:-1]) == {PAD}
    assert bodies[-1] == body and client.sent[-1]["more_body"] is False
    assert orjson.loads(b"".join(bodies)) == orjson.loads(body)  # leading whitespace is valid JSON


async def test_an_error_after_the_headers_is_the_error_object_in_the_body() -> None:
    client = Client(pads_wanted=1)
    release = asyncio.Event()
    error = UpstreamError("every channel failed", status=502, code="bad_upstream_response")
    running = asyncio.ensure_future(
        respond(answer_after(release, error), 0.01)({"type": "http"}, client.receive, client.send)
    )
    await client.pads_seen.wait()
    release.set()
    await running
    assert client.sent[0]["status"] == 200
    assert orjson.loads(b"".join(client.bodies())) == error.body()


async def test_a_crash_after_the_headers_is_a_server_error_object() -> None:
    client = Client(pads_wanted=1)
    release = asyncio.Event()
    running = asyncio.ensure_future(
        respond(answer_after(release, RuntimeError("boom")), 0.01)(
            {"type": "http"}, client.receive, client.send
        )
    )
    await client.pads_seen.wait()
    release.set()
    await running
    error = orjson.loads(b"".join(client.bodies()))["error"]
    assert error["type"] == "server_error" and "boom" not in error["message"]


async def test_a_client_that_leaves_cancels_the_call() -> None:
    client = Client(pads_wanted=1)
    cancelled = asyncio.Event()

    async def work() -> Response:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    running = asyncio.ensure_future(respond(work(), 0.01)({"type": "http"}, client.receive, client.send))
    await client.pads_seen.wait()
    client.gone.set()
    await running
    await cancelled.wait()
    assert client.sent[-1]["body"] == PAD  # nothing more was written


def request(header: str | None) -> Request:
    headers = [] if header is None else [(b"x-gateway-keepalive", header.encode())]
    return Request({"type": "http", "headers": headers})


@pytest.mark.parametrize(
    ("header", "configured", "expected"),
    [(None, 0, 0), (None, 4, 4), ("1", 0, 10), ("1", 4, 4), ("7", 0, 7), ("2.5", 4, 2.5), ("0", 4, 0),
     ("junk", 3, 3), ("inf", 0, 300), ("nan", 2, 2), ("-4", 2, 2)],
)  # fmt: skip
def test_interval_from_header_and_config(header: str | None, configured: float, expected: float) -> None:
    assert interval(request(header), ServerSettings(nonstream_keepalive_seconds=configured)) == expected
