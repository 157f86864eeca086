"""Must-show 4: bad input images and URLs are a 400 `invalid_image` / `invalid_image_url` with a reason,
refused before any upstream call (§2, §5.3). Blocked addresses are refused before connecting: the
only traffic is to the loopback fake, and only where the gateway is allowed to reach it.
"""

from __future__ import annotations

import base64

import pytest

from tests.e2e.images.support import assert_error, data_url, post
from tests.fakes.openai_images import HTML, FakeOpenAIImages, make_png
from tests.gateway_process import GatewayProcess

PNG = make_png("bad-input-source", (32, 32))


def edit_json(model: str, url: str, **extra: object) -> dict[str, object]:
    return {"model": model, "prompt": "p", "images": [{"image_url": url}], **extra}


# -- images the client sent --------------------------------------------------------------------------


def test_multipart_file_that_is_not_an_image(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages
) -> None:
    files = [("image", ("a.png", HTML, "image/png"))]
    resp = post(gateway, token, "/v1/images/edits", files=files, data={"model": "gpt-image-2", "prompt": "p"})
    error = assert_error(resp, 400, "invalid_image")
    assert "is not a PNG, JPEG, WEBP or GIF image" in error["message"]
    assert error["type"] == "invalid_request_error"
    assert fake.count() == 0


def test_multipart_mask_that_is_not_an_image(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages
) -> None:
    files = [("image", ("a.png", PNG, "image/png")), ("mask", ("m.png", b"GIF8not really", "image/png"))]
    resp = post(gateway, token, "/v1/images/edits", files=files, data={"model": "gpt-image-2", "prompt": "p"})
    error = assert_error(resp, 400, "invalid_image")
    assert "mask" in error["message"]
    assert fake.count() == 0


def test_multipart_empty_file(gateway: GatewayProcess, token: str, fake: FakeOpenAIImages) -> None:
    files = [("image[]", ("a.png", b"", "image/png"))]
    resp = post(gateway, token, "/v1/images/edits", files=files, data={"model": "gpt-image-2", "prompt": "p"})
    assert "empty" in assert_error(resp, 400, "invalid_image")["message"]
    assert fake.count() == 0


def test_multipart_without_an_image(gateway: GatewayProcess, token: str, fake: FakeOpenAIImages) -> None:
    files = [("mask", ("m.png", PNG, "image/png"))]
    resp = post(gateway, token, "/v1/images/edits", files=files, data={"model": "gpt-image-2", "prompt": "p"})
    assert assert_error(resp, 400, "missing_required_parameter")["param"] == "image"
    assert fake.count() == 0


def test_multipart_scalar_field_sent_twice(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages
) -> None:
    files = [("image", ("a.png", PNG, "image/png"))]
    data = {"model": "gpt-image-2", "prompt": "p", "quality": ["low", "high"]}
    resp = post(gateway, token, "/v1/images/edits", files=files, data=data)
    assert assert_error(resp, 400, "invalid_request")["param"] == "quality"
    assert fake.count() == 0


# -- multipart bodies the form parser refuses: a 400 naming the problem, never a 500 ---------------------


def test_multipart_without_a_boundary(gateway: GatewayProcess, token: str, fake: FakeOpenAIImages) -> None:
    headers = {"Content-Type": "multipart/form-data"}
    resp = post(gateway, token, "/v1/images/edits", content=b"--x\r\n\r\n", headers=headers)
    error = assert_error(resp, 400, "invalid_multipart")
    assert error["type"] == "invalid_request_error"
    assert "boundary" in error["message"]
    assert fake.count() == 0


def test_multipart_that_does_not_parse(gateway: GatewayProcess, token: str, fake: FakeOpenAIImages) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    body = b"--xyz\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--xyz--\r\n"
    error = assert_error(post(gateway, token, "/v1/images/edits", content=body, headers=headers), 400,
                         "invalid_multipart")  # fmt: skip
    assert "name" in error["message"]
    assert fake.count() == 0


def test_multipart_with_too_many_files(gateway: GatewayProcess, token: str, fake: FakeOpenAIImages) -> None:
    files = [("image[]", (f"{i}.png", PNG, "image/png")) for i in range(65)]
    resp = post(gateway, token, "/v1/images/edits", files=files, data={"model": "gpt-image-2", "prompt": "p"})
    error = assert_error(resp, 400, "invalid_multipart")
    assert "at most 64 files" in error["message"]
    assert error["param"] == "image"
    assert fake.count() == 0


def test_multipart_with_too_many_fields(gateway: GatewayProcess, token: str, fake: FakeOpenAIImages) -> None:
    data = {"model": "gpt-image-2", "prompt": "p", **{f"extra_{i}": "x" for i in range(300)}}
    resp = post(gateway, token, "/v1/images/edits", files=[("image", ("a.png", PNG, "image/png"))], data=data)
    error = assert_error(resp, 400, "invalid_multipart")
    assert "at most 256 fields" in error["message"]
    assert fake.count() == 0


@pytest.mark.parametrize("name", ["image[²]", "image[١]", "image[1x]", "images"])
def test_multipart_image_field_with_a_bad_name(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages, name: str
) -> None:
    files = [(name, ("a.png", PNG, "image/png"))]
    resp = post(gateway, token, "/v1/images/edits", files=files, data={"model": "gpt-image-2", "prompt": "p"})
    error = assert_error(resp, 400, "invalid_request")
    assert error["param"] == name
    assert fake.count() == 0


@pytest.mark.parametrize("field", ["n", "output_compression", "partial_images"])
@pytest.mark.parametrize("value", ["²", "٣", "1²", "9" * 5000, "-"])
def test_multipart_number_field_that_is_not_a_number(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages, field: str, value: str
) -> None:
    files = [("image", ("a.png", PNG, "image/png"))]
    data = {"model": "gpt-image-2", "prompt": "p", field: value}
    error = assert_error(
        post(gateway, token, "/v1/images/edits", files=files, data=data), 400, "invalid_value"
    )
    assert error["param"] == field
    assert fake.count() == 0


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-mp"])
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (data_url(HTML), "is not a PNG, JPEG, WEBP or GIF image"),
        ("data:image/png;base64,!!!not*base64!!!", "is not valid base64"),
        ("data:image/png;base64,", "is empty"),
        ("data:text/html;base64," + base64.b64encode(PNG).decode(), "not an image"),
        ("data:image/png," + "x" * 10, "without ;base64"),
    ],
)
def test_json_edit_with_a_bad_data_url(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages, model: str, url: str, reason: str
) -> None:
    resp = post(gateway, token, "/v1/images/edits", json=edit_json(model, url))
    error = assert_error(resp, 400, "invalid_image")
    assert reason in error["message"], error
    assert "images[0].image_url" in error["message"]
    assert fake.count() == 0


def test_json_edit_with_a_bad_mask_data_url(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages
) -> None:
    body = edit_json("gpt-image-2", data_url(PNG), mask={"image_url": data_url(HTML)})
    error = assert_error(post(gateway, token, "/v1/images/edits", json=body), 400, "invalid_image")
    assert "mask.image_url" in error["message"]
    assert fake.count() == 0


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-mp"])
@pytest.mark.parametrize("url", ["ftp://example.com/x.png", "file:///etc/passwd", "x.png", ""])
def test_json_edit_with_an_unsupported_scheme(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages, model: str, url: str
) -> None:
    resp = post(gateway, token, "/v1/images/edits", json=edit_json(model, url))
    error = assert_error(resp, 400, "invalid_image_url")
    assert "must be an https URL or a data: URL" in error["message"]
    assert fake.count() == 0


# -- URLs the gateway must fetch (edits_format: multipart channel) --------------------------------------


@pytest.mark.parametrize(
    ("url", "reason", "hits"),
    [
        ("http://10.0.0.1/x.png", "points to a blocked address (private network)", []),
        ("http://169.254.169.254/latest/meta-data", "blocked address (link-local, cloud metadata)", []),
        ("http://127.0.0.2:9/x.png", "points to a blocked address (loopback)", []),  # not in 127.0.0.1/32
        ("http://[::1]:9/x.png", "points to a blocked address (loopback)", []),
        ("http://[::ffff:10.0.0.1]/x.png", "points to a blocked address (private network)", []),
        ("http://0.0.0.0:9/x.png", "blocked address", []),
        ("{fake}/client/redirect-to-metadata", "redirects to a blocked address (link-local, cloud metadata)",
         ["/client/redirect-to-metadata"]),
        ("{fake}/client/redirect-to-private", "redirects to a blocked address (private network)",
         ["/client/redirect-to-private"]),
        ("{fake}/client/loop/0", "redirected more than 3 times",
         ["/client/loop/0", "/client/loop/1", "/client/loop/2", "/client/loop/3"]),
        ("{fake}/client/huge", "is over 1 MB", ["/client/huge"]),
        ("{fake}/client/huge-chunked", "is over 1 MB", ["/client/huge-chunked"]),
        ("{fake}/client/slow", "did not answer within 1 s", ["/client/slow"]),
        ("{fake}/client/notimage", "did not return a PNG, JPEG, WEBP or GIF image", ["/client/notimage"]),
        ("{fake}/client/missing.png", "answered HTTP 404", ["/client/missing.png"]),
    ],
)  # fmt: skip
def test_json_edit_url_the_gateway_refuses(
    gateway: GatewayProcess,
    token: str,
    fake: FakeOpenAIImages,
    fake_url: str,
    url: str,
    reason: str,
    hits: list[str],
) -> None:
    resp = post(gateway, token, "/v1/images/edits", json=edit_json("gpt-image-mp", url.format(fake=fake_url)))
    error = assert_error(resp, 400, "invalid_image_url")
    assert reason in error["message"], error
    assert error["message"].startswith("images[0].image_url ")
    assert "10.0.0.1" not in error["message"] and "169.254" not in error["message"]
    assert fake.count() == 0
    assert fake.hits() == hits


def test_bad_mask_url_is_refused(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages, fake_url: str
) -> None:
    body = edit_json("gpt-image-mp", f"{fake_url}/client/ok.png", mask={"image_url": "http://10.0.0.1/m.png"})
    error = assert_error(post(gateway, token, "/v1/images/edits", json=body), 400, "invalid_image_url")
    assert error["message"].startswith("mask.image_url ")
    assert fake.count() == 0


def test_loopback_refused_where_not_allowed(
    gateway_none: GatewayProcess, token_none: str, fake: FakeOpenAIImages, fake_url: str
) -> None:
    """Without `allowed_image_url_networks` loopback is blocked, before any connection is made."""
    for path in ("/client/ok.png", "/client/redirect-once"):
        body = edit_json("gpt-image-mp", f"{fake_url}{path}")
        error = assert_error(
            post(gateway_none, token_none, "/v1/images/edits", json=body), 400, "invalid_image_url"
        )
        assert "points to a blocked address (loopback)" in error["message"]
    assert fake.hits() == []
    assert fake.count() == 0


def test_gateway_still_serves_after_bad_input(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages, fake_url: str
) -> None:
    body = edit_json("gpt-image-mp", f"{fake_url}/client/ok.png")
    resp = post(gateway, token, "/v1/images/edits", json=body)
    assert resp.status_code == 200, resp.text
    assert fake.count() == 1
