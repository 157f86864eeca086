"""Base64 an upstream answered and the client gets as base64 goes out as the upstream's own text (§5.4):
never decoded and encoded again, still checked to be an image (§5.2)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from gateway.providers.mock import render_png
from tests.fakes.gateway_app import error_of, gateway_client, openai_channel
from tests.fakes.hostile import HostileUpstream, Scripted

IMAGES = "/v1/images/generations"
PNG = render_png("kept", 32)


Running = tuple[HostileUpstream, TestClient, dict[str, str]]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A hostile upstream scripted per test, behind a gateway whose one channel is that upstream."""
    with HostileUpstream() as upstream:
        channels = [openai_channel("only", upstream.base_url("only"), ["gpt-image-kept"])]
        with gateway_client(tmp_path_factory.mktemp("kept"), channels=channels) as (client, auth):
            yield upstream, client, auth


def answered(b64: bytes) -> Scripted:
    # Spaced as some upstreams write it: the client still gets exactly these base64 bytes.
    return Scripted(parts=[b'{"created": 7, "data": [ { "b64_json" : "' + b64 + b'" } ], "size": "32x32"}'])


@pytest.mark.parametrize("response_format", ["b64_json", None])
def test_the_clients_base64_is_the_upstreams_to_the_byte(
    running: Running, response_format: str | None
) -> None:
    upstream, client, auth = running
    b64 = base64.b64encode(PNG)
    upstream.script("only", answered(b64))
    body = {"model": "gpt-image-kept", "prompt": "a cat"}
    if response_format:
        body["response_format"] = response_format
    resp = client.post(IMAGES, json=body, headers=auth)
    assert resp.status_code == 200, resp.text
    assert b'"b64_json":"' + b64 + b'"' in resp.content
    assert int(resp.headers["content-length"]) == len(resp.content)
    assert resp.json() == {"created": 7, "data": [{"b64_json": b64.decode()}], "size": "32x32"}


@pytest.mark.parametrize(
    "b64",
    [base64.b64encode(b"<html>certainly not an image</html>"), b"", base64.b64encode(PNG[:6])],
    ids=["html", "empty", "a cut PNG signature"],
)
def test_base64_passed_through_must_still_be_an_image(running: Running, b64: bytes) -> None:
    upstream, client, auth = running
    upstream.script("only", answered(b64))
    body = {"model": "gpt-image-kept", "prompt": "a cat", "response_format": "b64_json"}
    resp = client.post(IMAGES, json=body, headers=auth)
    assert resp.status_code == 502, resp.text
    assert error_of(resp)["code"] in ("invalid_upstream_image", "bad_upstream_response")


def test_an_escaped_answer_is_parsed_and_still_sniffed(running: Running) -> None:
    upstream, client, auth = running
    text = base64.b64encode(b"GIF89a" + bytes(64)).replace(b"A", b"\\u0041")  # JSON escapes inside
    upstream.script("only", answered(text))
    body = {"model": "gpt-image-kept", "prompt": "a cat", "response_format": "b64_json"}
    resp = client.post(IMAGES, json=body, headers=auth)
    assert resp.status_code == 200, resp.text
    assert base64.b64decode(resp.json()["data"][0]["b64_json"]).startswith(b"GIF89a")
    upstream.script("only", answered(base64.b64encode(b"plain text").replace(b"=", b"\\u003d")))
    error_of(client.post(IMAGES, json=body, headers=auth), 502, "invalid_upstream_image")
