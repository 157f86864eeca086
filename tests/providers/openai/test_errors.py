from pathlib import Path

import orjson
import pytest

from gateway.providers.openai.errors import parse_retry_after, sanitize, upstream_error
from gateway.settings import ChannelSettings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openai"
SECRET = "channel-secret-XYZ123456"

CHANNEL = ChannelSettings.model_validate(
    {
        "name": "openai-main",
        "kind": "openai",
        "base_url": "https://upstream.internal.example/v1",
        "api_keys": [SECRET, "sk-second-key-abcdef"],
        "models": ["m"],
    }
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_400_maps_code_and_param() -> None:
    err = upstream_error(400, fixture("error_400.json"), {}, CHANNEL)
    assert err.status == 400
    assert err.upstream_status == 400
    assert err.code == "invalid_value"
    assert err.param == "temperature"
    assert err.type == "upstream_error"
    assert err.message == "Invalid value for 'temperature': expected a number between 0 and 2."
    assert err.retry_after is None


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_auth_refusal_is_a_502_never_invalid_api_key(status: int) -> None:
    """The client's own token was fine: it must not be told its key is wrong (§2)."""
    err = upstream_error(status, fixture("error_401.json"), {}, CHANNEL)
    assert (err.status, err.type, err.code) == (502, "upstream_error", "upstream_auth_failed")
    assert err.upstream_status == status  # the retry table still disables the key
    assert err.param is None
    assert "sk-proj" not in err.message and "abcd" not in err.message
    assert "platform.openai.com" not in err.message and "https://" not in err.message
    assert "openai-main" in err.message  # the operator learns which channel to fix


def test_upstream_504_is_a_504_upstream_timeout() -> None:
    err = upstream_error(504, b"<html>504 Gateway Time-out</html>", {}, CHANNEL)
    assert (err.status, err.type, err.code) == (504, "upstream_error", "upstream_timeout")
    assert err.upstream_status == 504


def test_429_keeps_retry_after() -> None:
    err = upstream_error(429, fixture("error_429.json"), {"Retry-After": "20"}, CHANNEL)
    assert err.status == 429
    assert err.upstream_status == 429
    assert err.code == "rate_limit_exceeded"
    assert err.retry_after == 20.0
    assert "https://" not in err.message


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_5xx_becomes_502_with_upstream_status_kept(status: int) -> None:
    err = upstream_error(status, fixture("error_500.json"), {}, CHANNEL)
    assert err.status == 502
    assert err.upstream_status == status
    assert err.code == f"upstream_http_{status}"  # the upstream sent code: null
    assert err.message == "The server had an error while processing your request. Sorry about that!"


@pytest.mark.parametrize(
    "raw",
    [b"<html><body>502 Bad Gateway</body></html>", b"", b"null", b"[1, 2]", b'{"detail": "x"}'],
)
def test_body_without_an_openai_error(raw: bytes) -> None:
    err = upstream_error(502, raw, {}, CHANNEL)
    assert err.status == 502
    assert err.upstream_status == 502
    assert err.code == "upstream_http_502"
    assert err.message == "upstream answered HTTP 502"
    assert err.param is None


def test_error_as_plain_string() -> None:
    err = upstream_error(404, b'{"error": "model gpt-x not found"}', {}, CHANNEL)
    assert (err.status, err.code, err.message) == (404, "upstream_http_404", "model gpt-x not found")


def test_numeric_code_is_stringified() -> None:
    err = upstream_error(400, b'{"error": {"message": "bad", "code": 1234, "param": null}}', {}, CHANNEL)
    assert err.code == "1234"


def test_content_policy_violation() -> None:
    body = {
        "error": {"message": "blocked by our safety system", "type": "x", "code": "content_policy_violation"}
    }
    err = upstream_error(400, orjson.dumps(body), {}, CHANNEL)
    assert (err.status, err.type, err.code) == (400, "invalid_request_error", "content_policy_violation")


def test_image_user_error_about_safety_is_a_content_policy_violation() -> None:
    body = {
        "error": {
            "message": "Your request was rejected by the safety system.",
            "type": "image_generation_user_error",
        }
    }
    err = upstream_error(400, orjson.dumps(body), {}, CHANNEL)
    assert (err.type, err.code) == ("invalid_request_error", "content_policy_violation")


def test_message_with_channel_key_and_base_url_is_sanitized() -> None:
    body = {"error": {"message": f"key {SECRET} refused at {CHANNEL.base_url}/chat/completions", "code": "x"}}
    err = upstream_error(404, orjson.dumps(body), {}, CHANNEL)
    assert SECRET not in err.message
    assert "upstream.internal.example" not in err.message
    assert err.message == "key *** refused at [url]"


def test_sanitize_removes_channel_keys_key_like_strings_and_urls() -> None:
    message = (
        f"key {SECRET} and sk-second-key-abcdef and sk-live_0123456789 and AIzaSyA-1234567890 "
        "see http://10.0.0.5:8080/v1/x?key=abc or https://example.com/path."
    )
    out = sanitize(message, CHANNEL)
    for leaked in (
        SECRET,
        "second-key",
        "0123456789",
        "SyA-1234567890",
        "10.0.0.5",
        "example.com",
        "key=abc",
    ):
        assert leaked not in out
    assert out.startswith("key *** and ***")
    assert "sk-***" in out and "AIza***" in out
    assert out.count("[url]") == 2


def test_sanitize_leaves_ordinary_text_alone() -> None:
    text = "Invalid value for 'size': must be one of 1024x1024, 1536x1024 (task-sk-1 ok)."
    assert sanitize(text, CHANNEL) == text


def test_sanitize_bounds_the_length() -> None:
    assert len(sanitize("x" * 10_000, CHANNEL)) == 2000


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected
