"""Smoke test of the images benchmark's parts: the PNG generator, the fake S3 sink, the fake upstream's images
endpoint, the reference proxy's bare pass-through and the baseline re-hosting proxy, over loopback."""

from __future__ import annotations

import base64
import io
import json
import sys
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from pydantic import SecretStr

from bench.checks import check_b64_answer, check_image_answer
from bench.png import MIN_PNG_BYTES, make_png
from bench.procs import Children, free_port, http_call, wait_until_ready
from bench.scenarios import MIB
from bench.targets import BENCH_DIR, PUBLIC_BASE_URL
from gateway.images.sniff import sniff
from gateway.settings import S3Settings
from gateway.storage.s3 import make_client
from tests.fakes.gemini_wire import check_answer

UPSTREAM_KEY = "sk-upstream-test"
PROXY_KEY = "sk-baseline-test"
REFERENCE_KEY = "sk-reference-test"
IMAGE_BYTES = 65_536
REQUEST = {"model": "gpt-image-bench", "prompt": "A red square."}


@dataclass(frozen=True)
class Parts:
    upstream: str
    s3: str
    baseline: str
    reference: str


def spawn(children: Children, logs: Path, name: str, args: list[str]) -> str:
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / f"{name}.py"), "--port", str(port), "--lifetime", "120", *args]
    proc = children.spawn(argv, log=logs / f"{name}.log")
    wait_until_ready(f"http://127.0.0.1:{port}/healthz", proc, logs / f"{name}.log", timeout=20)
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parts]:
    logs = tmp_path_factory.mktemp("bench-images-logs")
    with Children() as children:
        upstream = spawn(
            children, logs, "fake_upstream", ["--key", UPSTREAM_KEY, "--image-bytes", str(IMAGE_BYTES)]
        )
        s3 = spawn(children, logs, "fake_s3", ["--bucket", "bench"])
        baseline = spawn(
            children,
            logs,
            "baseline_rehost",
            ["--upstream", f"{upstream}/v1", "--key", PROXY_KEY, "--upstream-key", UPSTREAM_KEY]
            + ["--s3-endpoint", s3, "--public-base-url", PUBLIC_BASE_URL],
        )
        reference = spawn(
            children,
            logs,
            "reference_proxy",
            ["--upstream", f"{upstream}/v1", "--key", REFERENCE_KEY, "--upstream-key", UPSTREAM_KEY],
        )
        yield Parts(upstream, s3, baseline, reference)


def post(url: str, body: Mapping[str, object], key: str) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    return http_call("POST", url, json.dumps(body).encode(), headers)


def stats(parts: Parts) -> dict[str, int]:
    status, _, body = http_call("GET", f"{parts.s3}/_stats")
    assert status == 200
    data: dict[str, int] = json.loads(body)
    return data


@pytest.mark.parametrize("size", [MIN_PNG_BYTES, 100_003, MIB])
def test_png_has_the_exact_size_and_decodes(size: int) -> None:
    png = make_png(size)
    info = sniff(png)
    assert len(png) == size
    assert info is not None and info.mime == "image/png" and info.width and info.height
    with Image.open(io.BytesIO(png)) as image:
        image.load()  # checks every chunk's CRC, the zlib stream and the pixel count
        assert image.size == (info.width, info.height)


def test_png_pixels_are_incompressible() -> None:
    png = make_png(256 * 1024)
    assert len(zlib.compress(png, 6)) > 0.99 * len(png)
    assert make_png(8192) != make_png(8192)
    with pytest.raises(ValueError):
        make_png(MIN_PNG_BYTES - 1)


def test_fake_s3_takes_uploads_from_boto3(parts: Parts) -> None:
    settings = S3Settings(
        endpoint_url=parts.s3,
        region="us-east-1",
        bucket="bench",
        access_key_id=SecretStr("x"),
        secret_access_key=SecretStr("y"),
        addressing_style="path",
    )
    client = make_client(settings)  # what the gateway and the baseline use: Expect: 100-continue, SigV4
    try:
        client.head_bucket(Bucket="bench")
        before = stats(parts)
        answer = client.put_object(Bucket="bench", Key="a/b.png", Body=b"x" * 300_000)
        assert answer["ETag"]
    finally:
        client.close()
    after = stats(parts)
    assert after["puts"] == before["puts"] + 1
    assert after["put_bytes"] == before["put_bytes"] + 300_000


def test_fake_s3_answers_404_to_anything_else(parts: Parts) -> None:
    assert http_call("HEAD", f"{parts.s3}/other-bucket")[0] == 404
    assert http_call("GET", f"{parts.s3}/bench/a/b.png")[0] == 404
    assert http_call("PUT", f"{parts.s3}/other-bucket/k", b"abc")[0] == 404
    status, headers, _ = http_call("PUT", f"{parts.s3}/bench/k.png", b"abc")
    assert status == 200 and headers["etag"].startswith('"')


def test_upstream_answers_like_a_gpt_image_model(parts: Parts) -> None:
    url = f"{parts.upstream}/v1/images/generations"
    status, _, body = post(url, {**REQUEST, "response_format": "url"}, UPSTREAM_KEY)
    error = json.loads(body)["error"]
    assert status == 400
    assert error == {
        "message": "Unknown parameter: 'response_format'.",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": "unknown_parameter",
    }
    status, _, body = post(url, REQUEST, UPSTREAM_KEY)
    answer = json.loads(body)
    png = base64.b64decode(answer["data"][0]["b64_json"])
    assert status == 200 and len(png) == IMAGE_BYTES and sniff(png) is not None
    assert answer["usage"]["total_tokens"] > 0 and "url" not in answer["data"][0]


def test_baseline_rehosts_the_image(parts: Parts) -> None:
    before = stats(parts)
    status, _, body = post(
        f"{parts.baseline}/v1/images/generations", {**REQUEST, "response_format": "url"}, PROXY_KEY
    )
    assert status == 200
    assert "no b64_json" in check_image_answer(body)
    after = stats(parts)
    assert after["puts"] == before["puts"] + 1
    assert after["put_bytes"] == before["put_bytes"] + IMAGE_BYTES
    status, _, _ = post(f"{parts.baseline}/v1/images/generations", REQUEST, "sk-wrong")
    assert status == 401


def test_reference_passes_the_base64_answer_through_unchanged(parts: Parts) -> None:
    _, _, direct = post(f"{parts.upstream}/v1/images/generations", REQUEST, UPSTREAM_KEY)
    asked = {**REQUEST, "response_format": "b64_json"}  # dropped on the way, as GPT image models refuse it
    status, headers, body = post(f"{parts.reference}/v1/images/generations", asked, REFERENCE_KEY)
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert body == direct  # byte for byte: the upstream serializes its answer once
    assert "data[0].b64_json" in check_b64_answer(body, IMAGE_BYTES)
    assert post(f"{parts.reference}/v1/images/generations", asked, "sk-wrong")[0] == 401


def test_the_b64_check_wants_the_whole_image() -> None:
    png = make_png(MIN_PNG_BYTES)
    b64 = base64.b64encode(png).decode()
    assert "inlineData.data" in check_b64_answer(
        json.dumps({"candidates": [{"content": {"parts": [{"inlineData": {"data": b64}}]}}]}).encode(),
        len(png),
    )
    with pytest.raises(RuntimeError, match="decodes to"):
        check_b64_answer(json.dumps({"data": [{"b64_json": b64[:-8]}]}).encode(), len(png))
    with pytest.raises(RuntimeError, match="no b64_json"):
        check_b64_answer(b'{"data": [{"url": "https://example.com/x.png"}]}', len(png))


def test_an_answer_with_base64_fails_the_check() -> None:
    with pytest.raises(RuntimeError, match="b64_json"):
        check_image_answer(b'{"data": [{"b64_json": "iVBORw0KGgo="}]}')
    with pytest.raises(RuntimeError, match="storage URL"):
        check_image_answer(b'{"data": [{"url": "https://example.com/x.png"}]}')


def test_upstream_answers_like_a_gemini_image_model(tmp_path: Path) -> None:
    with Children() as children:
        upstream = spawn(
            children,
            tmp_path,
            "fake_upstream",
            ["--key", UPSTREAM_KEY, "--image-bytes", str(IMAGE_BYTES), "--gemini"],
        )
        url = f"{upstream}/v1beta/models/gemini-bench-image:generateContent"
        body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "x"}]}]}).encode()
        status, _, answer = http_call("POST", url, body, {"x-goog-api-key": UPSTREAM_KEY})
        assert status == 200
        doc = json.loads(answer)
        check_answer(doc)  # google-genai's own types
        png = base64.b64decode(doc["candidates"][0]["content"]["parts"][0]["inlineData"]["data"])
        assert len(png) == IMAGE_BYTES and sniff(png) is not None
        assert http_call("POST", url, body, {"x-goog-api-key": "wrong"})[0] == 403
        assert http_call("POST", f"{upstream}/v1/images/generations", body, {})[0] == 404
        reference = spawn(
            children,
            tmp_path,
            "reference_proxy",
            ["--upstream", f"{upstream}/v1", "--key", REFERENCE_KEY, "--upstream-key", UPSTREAM_KEY],
        )
        asked = {"model": "gemini-bench-image", "prompt": "x", "response_format": "b64_json"}
        status, _, passed = post(f"{reference}/v1/images/generations", asked, REFERENCE_KEY)
        assert status == 200 and passed == answer  # the Gemini answer, unchanged
