"""Multi-turn image editing (§3.4): an earlier answer's image, served by this gateway's storage, goes back to
Gemini as `inlineData` with the `thoughtSignature` that came with it; an image URL that is not ours is
fetched through the SSRF-safe fetcher."""

from __future__ import annotations

import base64

from tests.e2e.gemini.conftest import Gateway
from tests.e2e.gemini.support import markdown_urls, png, post, user
from tests.fakes.gemini_upstream import FakeGemini, image_answer
from tests.fakes.image_host import ImageHost

PRO = "gemini-3-pro-image-preview"
SIGNATURE = base64.b64encode(b"signature of the first image" * 8).decode()


def test_the_second_turn_sends_the_stored_image_back_with_its_signature(
    gateway: Gateway, fake: FakeGemini
) -> None:
    first = png("first answer")
    fake.will(image_answer(first, text="A red fox.", signature=SIGNATURE, model=PRO))
    with gateway.client() as client:
        answer = client.chat.completions.create(model=PRO, messages=user("draw a fox"))
        previous = answer.choices[0].message
        (url,) = markdown_urls(previous.content)
        assert url.startswith(f"{gateway.url}/files/")
        client.chat.completions.create(
            model=PRO,
            messages=[
                {"role": "user", "content": "draw a fox"},
                {"role": "assistant", "content": previous.content},
                {"role": "user", "content": "make it blue"},
            ],
        )
    contents = fake.calls[1].body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    text, image = contents[1]["parts"]
    assert text == {"text": "A red fox."}
    assert base64.b64decode(image["inlineData"]["data"]) == first
    assert image["inlineData"]["mimeType"] == "image/png"
    assert image["thoughtSignature"] == SIGNATURE
    assert contents[2] == {"role": "user", "parts": [{"text": "make it blue"}]}


def test_an_image_without_a_signature_goes_back_without_one(gateway: Gateway, fake: FakeGemini) -> None:
    with gateway.client() as client:
        answer = client.chat.completions.create(model=PRO, messages=user("draw a fox"))
        content = answer.choices[0].message.content
        client.chat.completions.create(
            model=PRO,
            messages=[*user("draw a fox"), {"role": "assistant", "content": content}, *user("again")],
        )
    (image,) = [p for p in fake.calls[1].body["contents"][1]["parts"] if "inlineData" in p]
    assert "thoughtSignature" not in image
    assert base64.b64decode(image["inlineData"]["data"]) == fake.produced[0]


def test_an_image_url_that_is_not_ours_is_fetched_by_the_safe_fetcher(
    gateway: Gateway, fake: FakeGemini, image_host: ImageHost
) -> None:
    elsewhere = png("someone else's image")
    url = image_host.put("elsewhere.png", elsewhere)
    messages = [*user("draw"), {"role": "assistant", "content": f"![image]({url})"}, *user("edit it")]
    with gateway.client() as client:
        client.chat.completions.create(model=PRO, messages=messages)
    (fetch,) = [f for f in image_host.fetches if f.path == "/img/elsewhere.png"]
    assert fetch.headers["User-Agent"] == "image-gateway"  # the fetcher's own request
    (image,) = fake.calls[0].body["contents"][1]["parts"]
    assert base64.b64decode(image["inlineData"]["data"]) == elsewhere and "thoughtSignature" not in image


def test_a_url_to_a_blocked_address_is_refused_before_any_upstream_call(
    gateway: Gateway, fake: FakeGemini
) -> None:
    messages = [
        *user("draw"),
        {"role": "assistant", "content": "![image](http://169.254.169.254/a.png)"},
        *user("x"),
    ]
    resp = post(gateway, "/v1/chat/completions", {"model": PRO, "messages": messages})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_image_url" and "blocked address" in error["message"]
    assert fake.calls == []


def test_a_storage_url_of_an_image_that_is_gone_is_a_400(gateway: Gateway, fake: FakeGemini) -> None:
    gone = f"{gateway.url}/files/2020/01/01/{'0' * 32}.png"
    resp = post(gateway, "/v1/chat/completions", {"model": PRO, "messages": user("edit", ("image", gone))})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_image_url"
    assert fake.calls == []
