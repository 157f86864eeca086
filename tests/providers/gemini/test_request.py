"""OpenAI-shaped requests → generateContent bodies (§3.4 chat, §4.2 / §4.4 Images API)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gateway.domain import ImageCall, ImagePart, InputImage
from gateway.errors import InvalidImageURL, InvalidRequest
from gateway.providers.gemini.messages import markdown_images
from gateway.providers.gemini.request import chat_request, images_request, prompt_images
from gateway.providers.mock import render_png
from tests.providers.gemini.conftest import PNG, Resolver, channel

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16
DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
OURS = "https://cdn.example/2026/01/01/abc.png"
THEIRS = "https://elsewhere.example/cat.jpg"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def chat(
    body: dict[str, Any],
    resolver: Resolver | None = None,
    model: str = "gemini-2.5-flash-image",
    **settings: Any,
) -> dict[str, Any]:
    request = await chat_request(
        {"model": model, **body}, channel=channel(**settings), model=model, resolve=resolver or Resolver()
    )
    return request.body


async def test_system_messages_become_system_instruction_and_roles_are_mapped() -> None:
    body = await chat(
        {
            "messages": [
                {"role": "system", "content": "You draw."},
                {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
                {"role": "user", "content": "a cat"},
                {"role": "assistant", "content": "Here."},
                {"role": "user", "content": [{"type": "text", "text": "bigger"}]},
            ]
        }
    )
    assert body["systemInstruction"] == {"parts": [{"text": "You draw."}, {"text": "Be brief."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "a cat"}]},
        {"role": "model", "parts": [{"text": "Here."}]},
        {"role": "user", "parts": [{"text": "bigger"}]},
    ]


async def test_consecutive_turns_of_one_role_are_merged() -> None:
    body = await chat({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})
    assert body["contents"] == [{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}]


async def test_image_parts_become_inline_data_with_the_sniffed_type_before_the_text() -> None:
    resolver = Resolver({THEIRS: InputImage(JPEG, "image/jpeg")})
    content = [
        {"type": "text", "text": "make them face each other"},
        {"type": "image_url", "image_url": {"url": THEIRS}},
        {"type": "image_url", "image_url": {"url": DATA_URL}},
    ]
    body = await chat({"messages": [{"role": "user", "content": content}]}, resolver)
    assert body["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/jpeg", "data": b64(JPEG)}},
        {"inlineData": {"mimeType": "image/png", "data": b64(PNG)}},
        {"text": "make them face each other"},
    ]
    assert [url for url, _ in resolver.asked] == [THEIRS, DATA_URL]
    assert resolver.asked[0][1] == "messages[0].content[1].image_url"


async def test_an_image_that_cannot_be_resolved_is_the_resolvers_400() -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://nowhere.example/x.png"}}]
    with pytest.raises(InvalidImageURL):
        await chat({"messages": [{"role": "user", "content": content}]})


async def test_generation_config_from_the_openai_fields() -> None:
    body = await chat(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.2,
            "top_p": 0.9,
            "max_tokens": 50,
            "stop": "END",
            "seed": 7,
        },
        model="gemini-2.5-flash",
    )
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "maxOutputTokens": 50,
        "stopSequences": ["END"],
        "seed": 7,
    }
    body = await chat(
        {"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b"], "max_completion_tokens": 9},
        model="gemini-2.5-flash",
    )
    assert body["generationConfig"] == {"maxOutputTokens": 9, "stopSequences": ["a", "b"]}


async def test_a_text_model_gets_no_generation_config_when_there_is_nothing_to_say() -> None:
    body = await chat({"messages": [{"role": "user", "content": "hi"}]}, model="gemini-2.5-flash")
    assert "generationConfig" not in body


async def test_an_image_model_answers_text_and_images_with_its_image_config() -> None:
    body = await chat(
        {
            "messages": [{"role": "user", "content": "a cat"}],
            "extra_unknown": 1,
            "google": {"image_config": {"aspect_ratio": "16:9", "image_size": "4k"}},
        },
        model="gemini-3-pro-image-preview",
        image_size_models=["gemini-3-pro-image-preview"],
    )
    assert body["generationConfig"] == {
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"aspectRatio": "16:9", "imageSize": "4K"},
    }
    assert set(body) == {"contents", "generationConfig"}  # OpenAI-only fields are not forwarded


async def test_model_defaults_apply_to_chat_too() -> None:
    body = await chat(
        {"messages": [{"role": "user", "content": "a cat"}]},
        model="gemini-2.5-flash-image-hd",
        model_map={"gemini-2.5-flash-image-hd": "gemini-2.5-flash-image"},
        image_size_models=["gemini-2.5-flash-image-hd"],
        model_defaults={"gemini-2.5-flash-image-hd": {"image_size": "4K"}},
    )
    assert body["generationConfig"]["imageConfig"] == {"imageSize": "4K"}


async def test_chat_n_above_one_is_refused() -> None:
    with pytest.raises(InvalidRequest) as err:
        await chat({"messages": [{"role": "user", "content": "a"}], "n": 2})
    assert err.value.param == "n"


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "tool", "content": "x"}], "messages[0].role"),
        (
            [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
            "messages[0].content[0].type",
        ),
        (
            [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": DATA_URL}}]}],
            "messages[0].content[0]",
        ),
        ([{"role": "system", "content": "only a system prompt"}], "messages"),
        (["not an object"], "messages[0]"),
    ],
)
async def test_messages_gemini_cannot_take_are_400s_naming_the_field(messages: list[Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        await chat({"messages": messages})
    assert err.value.param == param


async def test_images_of_earlier_answers_go_back_as_inline_data_with_their_thought_signature() -> None:
    first = render_png("first answer", 8)
    resolver = Resolver(
        {OURS: InputImage(first, "image/png", "c2lnbmF0dXJl"), THEIRS: InputImage(JPEG, "image/jpeg")}
    )
    messages = [
        {"role": "user", "content": "a cat"},
        {
            "role": "assistant",
            "content": f"Here it is.\n\n![image]({OURS})\n\nAnd another: ![x]({THEIRS})",
            "images": [{"type": "image_url", "image_url": {"url": OURS}}],
        },
        {"role": "user", "content": "make it blue"},
    ]
    body = await chat({"messages": messages}, resolver)
    assert body["contents"][1] == {
        "role": "model",
        "parts": [
            {"text": "Here it is."},
            {"inlineData": {"mimeType": "image/png", "data": b64(first)}, "thoughtSignature": "c2lnbmF0dXJl"},
            {"text": "And another:"},
            {"inlineData": {"mimeType": "image/jpeg", "data": b64(JPEG)}},
        ],
    }
    assert [url for url, _ in resolver.asked] == [OURS, THEIRS]  # the images[] echo is not sent twice


async def test_a_signature_never_goes_on_a_users_image() -> None:
    resolver = Resolver({OURS: InputImage(PNG, "image/png", "c2ln")})
    content = [{"type": "text", "text": "edit"}, {"type": "image_url", "image_url": {"url": OURS}}]
    body = await chat({"messages": [{"role": "user", "content": content}]}, resolver)
    assert "thoughtSignature" not in body["contents"][0]["parts"][0]


async def test_images_listed_only_in_images_are_sent_back_too() -> None:
    resolver = Resolver({OURS: InputImage(PNG, "image/png")})
    messages = [
        {"role": "user", "content": "a cat"},
        {"role": "assistant", "content": None, "images": [{"type": "image_url", "image_url": {"url": OURS}}]},
        {"role": "user", "content": "again"},
    ]
    body = await chat({"messages": messages}, resolver)
    assert body["contents"][1]["parts"] == [{"inlineData": {"mimeType": "image/png", "data": b64(PNG)}}]


def test_markdown_images_are_found_in_order_and_only_with_image_urls() -> None:
    text = f"a ![one]({OURS}) b ![two]( {DATA_URL} ) ![bad](javascript:x) ![sp](https://x/a b.png) [link](https://x)"
    assert [url for _, _, url in markdown_images(text)] == [OURS, DATA_URL]


def test_hostile_markdown_is_scanned_in_linear_time() -> None:
    # Many `![` sharing one far `](…)`: a backtracking pattern would rescan the tail for each of them.
    text = "![" * 50_000 + "](x" + " " * 10 + ")" + "![a](https://" * 20_000
    assert markdown_images(text) == []


def call(
    body: dict[str, Any], files: tuple[ImagePart, ...] = (), operation: str = "images.generate"
) -> ImageCall:
    return ImageCall(operation, {"model": "gemini-2.5-flash-image", **body}, files)  # type: ignore[arg-type]


async def images(
    body: dict[str, Any],
    resolver: Resolver | None = None,
    files: tuple[ImagePart, ...] = (),
    operation: str = "images.generate",
    model: str = "gemini-2.5-flash-image",
    **settings: Any,
) -> tuple[dict[str, Any], int]:
    request = await images_request(
        call(body, files, operation), channel=channel(**settings), model=model, resolve=resolver or Resolver()
    )
    return request.body, request.calls


async def test_a_generation_is_the_prompt_with_image_output_and_its_ratio() -> None:
    body, calls = await images({"prompt": "a pig", "size": "1792x1024", "n": 3, "response_format": "url"})
    assert calls == 3
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "a pig"}]}],
        "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9"}},
    }


async def test_image_urls_in_the_prompt_are_input_images_and_leave_the_text() -> None:
    url = "https://google.datas.systems/fileSystem/response_images/287/2025/09/21/1758420613207028663_155.png"
    resolver = Resolver({url: InputImage(JPEG, "image/jpeg")})
    body, _ = await images({"prompt": f"{url} 移除图片的背景,我只要图片"}, resolver)
    assert body["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/jpeg", "data": b64(JPEG)}},
        {"text": "移除图片的背景,我只要图片"},
    ]
    assert resolver.asked == [(url, "image URL #1 in prompt")]


async def test_prompt_urls_stay_text_when_the_channel_says_so() -> None:
    body, _ = await images({"prompt": "draw https://example.com/x.png"}, prompt_image_urls=False)
    assert body["contents"][0]["parts"] == [{"text": "draw https://example.com/x.png"}]


def test_prompt_urls_stop_at_what_is_not_a_url() -> None:
    assert prompt_images("see (https://a.example/x.png), then 改成绿色https://b.example/y.jpg改") == (
        "see ( ), then 改成绿色 改",
        ["https://a.example/x.png", "https://b.example/y.jpg"],
    )
    assert prompt_images(f"edit {DATA_URL} now") == ("edit now", [DATA_URL])


async def test_json_edits_send_every_image_before_the_prompt() -> None:
    resolver = Resolver({THEIRS: InputImage(JPEG, "image/jpeg")})
    body, _ = await images(
        {"prompt": "merge", "images": [{"image_url": THEIRS}, {"image_url": DATA_URL}]},
        resolver,
        operation="images.edit",
    )
    assert body["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/jpeg", "data": b64(JPEG)}},
        {"inlineData": {"mimeType": "image/png", "data": b64(PNG)}},
        {"text": "merge"},
    ]


async def test_multipart_edits_send_their_files_with_the_sniffed_type() -> None:
    files = (
        ImagePart("image[]", "a.jpg", JPEG, "image/jpeg"),
        ImagePart("image[]", "b.png", PNG, "image/png"),
    )
    body, _ = await images({"prompt": "merge"}, files=files, operation="images.edit")
    assert [p.get("inlineData", {}).get("mimeType") for p in body["contents"][0]["parts"]] == [
        "image/jpeg",
        "image/png",
        None,
    ]


@pytest.mark.parametrize(
    ("body", "files", "param"),
    [
        ({"prompt": "x", "mask": {"image_url": DATA_URL}}, (), "mask"),
        ({"prompt": "x"}, (ImagePart("mask", "m.png", PNG, "image/png"),), "mask"),
        ({"prompt": "x", "images": [{"file_id": "file-1"}]}, (), "images[0].image_url"),
        ({"prompt": "x", "n": 11}, (), "n"),
        ({"prompt": ""}, (), "prompt"),
    ],
)
async def test_edits_gemini_cannot_do_are_400s(
    body: dict[str, Any], files: tuple[ImagePart, ...], param: str
) -> None:
    with pytest.raises(InvalidRequest) as err:
        await images(body, files=files, operation="images.edit")
    assert err.value.param == param


async def test_model_defaults_give_the_hd_model_its_4k_unless_the_client_chose() -> None:
    settings: dict[str, Any] = {
        "model_map": {"gemini-2.5-flash-image-hd": "gemini-3-pro-image-preview"},
        "image_size_models": ["gemini-3-pro-image-preview"],
        "model_defaults": {"gemini-2.5-flash-image-hd": {"image_size": "4K"}},
    }
    hd = "gemini-2.5-flash-image-hd"
    body, _ = await images({"prompt": "a dog", "size": "1024x1024"}, model=hd, **settings)
    assert body["generationConfig"]["imageConfig"] == {"aspectRatio": "1:1", "imageSize": "4K"}
    body, _ = await images({"prompt": "a dog", "image_size": "1k"}, model=hd, **settings)
    assert body["generationConfig"]["imageConfig"] == {"imageSize": "1K"}
    body, _ = await images(
        {"prompt": "a dog", "size": "1024x1024"}, model="gemini-3-pro-image-preview", **settings
    )
    assert body["generationConfig"]["imageConfig"] == {"aspectRatio": "1:1", "imageSize": "1K"}
