"""Chat through the official OpenAI SDK against a real gateway process and a real fake upstream."""

from __future__ import annotations

import threading

import httpx2 as httpx
import openai
import pytest
from openai import OpenAI

from tests.fakes.openai_upstream import FakeOpenAI, wait_for
from tests.gateway_process import GatewayProcess

HELLO = [{"role": "user", "content": "Hello"}]


def test_non_stream_chat(client: OpenAI, fake: FakeOpenAI) -> None:
    answer = client.chat.completions.create(
        model="chat-basic", messages=HELLO, extra_body={"custom_field": 7}
    )
    assert answer.choices[0].message.content == "Hello! How can I assist you today?"
    assert answer.model == "chat-basic"
    assert answer.usage is not None and answer.usage.total_tokens == 29
    sent = fake.last("ok")
    assert sent.headers["Authorization"] == "Bearer sk-upstream-plain"
    assert sent.body["custom_field"] == 7  # unknown fields are forwarded
    assert sent.body["messages"] == HELLO


def test_v1beta_openai_path_is_the_same_handler(
    gateway: GatewayProcess, token: str, fake: FakeOpenAI
) -> None:
    with OpenAI(base_url=f"{gateway.url}/v1beta/openai", api_key=token, max_retries=0) as c:
        answer = c.chat.completions.create(model="chat-basic", messages=HELLO)
    assert answer.choices[0].message.content


def test_stream_first_chunk_reaches_client_before_upstream_finishes(client: OpenAI, fake: FakeOpenAI) -> None:
    """The upstream holds the rest of its stream until the client has the first chunk: a gateway that
    buffered would leave the client waiting until the fake gives up. Every event is logged before
    the step it stands for can have effects on the other side, so this order is the only one a
    streaming gateway can produce, whatever the scheduling."""
    stream = client.chat.completions.create(model="chat-gated", messages=HELLO, stream=True)
    texts = []
    for chunk in stream:
        if not texts:
            fake.log("client_got_first")
            fake.release_stream.set()  # only now may the upstream send the rest
        texts.append(chunk.choices[0].delta.content if chunk.choices else None)
    assert fake.events == [
        "upstream_sending_first",
        "client_got_first",
        "upstream_released",
        "upstream_sending_last",
    ]
    assert "".join(t for t in texts if t) == "Hello there"


def test_stream_usage_always_requested_and_stripped_unless_asked(client: OpenAI, fake: FakeOpenAI) -> None:
    chunks = list(client.chat.completions.create(model="chat-basic", messages=HELLO, stream=True))
    assert fake.last("ok").body["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)  # the usage-only chunk is gone
    assert all(c.model == "chat-basic" for c in chunks)

    chunks = list(
        client.chat.completions.create(
            model="chat-basic", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 12


def test_failover_from_500_never_calls_failed_channel_again(client: OpenAI, fake: FakeOpenAI) -> None:
    answer = client.chat.completions.create(model="failover", messages=HELLO)
    assert answer.choices[0].message.content
    assert fake.count("fail500") == 1
    assert fake.count("ok") == 1


def test_429_cools_the_channel_down_for_the_next_request(client: OpenAI, fake: FakeOpenAI) -> None:
    client.chat.completions.create(model="cooldown", messages=HELLO)
    assert fake.count("r429") == 1 and fake.count("ok") == 1
    client.chat.completions.create(model="cooldown", messages=HELLO)
    assert fake.count("r429") == 1  # skipped while cooling down
    assert fake.count("ok") == 2


def test_400_is_not_failed_over(client: OpenAI, fake: FakeOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="bad-request", messages=HELLO)
    err = info.value
    assert err.status_code == 400
    assert err.body["param"] == "temperature"  # type: ignore[index]
    assert err.body["code"] == "invalid_value"  # type: ignore[index]
    assert fake.count("r400") == 1
    assert fake.count("ok") == 0


def test_model_map_applied_upstream(client: OpenAI, fake: FakeOpenAI) -> None:
    answer = client.chat.completions.create(model="alias", messages=HELLO)
    assert fake.last("ok").body["model"] == "real-upstream-model"
    assert answer.model == "alias"


def test_model_outside_group_is_404(client: OpenAI, fake: FakeOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="economy-only", messages=HELLO)
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert fake.calls == []


def test_models_lists_only_the_group(client: OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert "chat-basic" in ids and "failover" in ids
    assert "economy-only" not in ids


def test_disabled_and_rotated_tokens_are_refused_at_once(gateway: GatewayProcess) -> None:
    created = gateway.admin("POST", "/admin/tokens", json={"name": "short-lived"}).json()
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=created["key"], max_retries=0) as c:
        c.chat.completions.create(model="chat-basic", messages=HELLO)  # cached as valid now
        assert (
            gateway.admin("PATCH", f"/admin/tokens/{created['id']}", json={"status": "disabled"}).status_code
            == 200
        )
        with pytest.raises(openai.AuthenticationError) as info:
            c.chat.completions.create(model="chat-basic", messages=HELLO)
        assert info.value.body["code"] == "invalid_api_key"  # type: ignore[index]

    other = gateway.admin("POST", "/admin/tokens", json={"name": "rotating"}).json()
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=other["key"], max_retries=0) as c:
        c.chat.completions.create(model="chat-basic", messages=HELLO)
        rotated = gateway.admin("POST", f"/admin/tokens/{other['id']}/rotate").json()
        with pytest.raises(openai.AuthenticationError):
            c.chat.completions.create(model="chat-basic", messages=HELLO)
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=rotated["key"], max_retries=0) as c:
        assert c.chat.completions.create(model="chat-basic", messages=HELLO).choices


def test_client_disconnect_cancels_upstream_stream(
    gateway: GatewayProcess, token: str, fake: FakeOpenAI
) -> None:
    body = {"model": "chat-gated", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, headers=headers) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                break  # got the first chunk; hang up while the upstream is still streaming
    assert wait_for(fake.stream_closed.is_set, timeout=10), fake.events
    assert fake.events == ["upstream_sending_first", "upstream_saw_disconnect"]


def test_concurrent_requests_do_not_disturb_each_other(client: OpenAI, fake: FakeOpenAI) -> None:
    errors: list[BaseException] = []

    def one() -> None:
        try:
            client.chat.completions.create(model="chat-basic", messages=HELLO)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert fake.count("ok") == 20
