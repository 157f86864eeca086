"""Image output options: aspect ratios (§4.2), imageSize rules, modalities (§3.1), model_defaults (§6.1)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequest
from gateway.providers.gemini import imaging
from tests.providers.gemini.conftest import channel

FLASH = imaging.ModelNames("gemini-2.5-flash-image", "gemini-2.5-flash-image")
PRO = imaging.ModelNames("gemini-3-pro-image-preview", "gemini-3-pro-image-preview")
SIZED = channel(image_size_models=["gemini-3-pro-image-preview"])


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ("1024x1024", "1:1"),
        ("1536x1024", "3:2"),
        ("1024x1536", "2:3"),
        ("1792x1024", "16:9"),
        ("1024x1792", "9:16"),
    ],
)
def test_each_openai_size_has_its_ratio(size: str, ratio: str) -> None:
    assert imaging.aspect_ratio(size, "size") == ratio
    assert imaging.image_config({"size": size}, channel(), FLASH, images_api=True) == {"aspectRatio": ratio}


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ("512x512", "1:1"),
        ("1280x720", "16:9"),
        ("720x1280", "9:16"),
        ("2048x1536", "4:3"),
        ("1200x1500", "4:5"),
        ("2520x1080", "21:9"),
        ("3000x1000", "21:9"),
        ("1000x1250", "4:5"),
    ],
)
def test_any_size_gets_the_nearest_supported_ratio(size: str, ratio: str) -> None:
    assert imaging.aspect_ratio(size, "size") == ratio


@pytest.mark.parametrize(
    ("value", "ratio"), [("4:3", "4:3"), (" 21:9 ", "21:9"), ("1:8", "1:8"), ("16:09", "16:9")]
)
def test_a_literal_ratio_is_sent_as_is(value: str, ratio: str) -> None:
    assert imaging.aspect_ratio(value, "size") == ratio


@pytest.mark.parametrize("value", ["auto", "", "AUTO"])
def test_auto_leaves_the_ratio_to_the_model(value: str) -> None:
    assert imaging.aspect_ratio(value, "size") is None
    assert imaging.image_config({"size": value}, channel(), FLASH, images_api=True) == {}


@pytest.mark.parametrize("value", ["big", "0x100", "16:0", "1024x", "-1x5"])
def test_a_size_that_is_neither_is_a_400_naming_the_field(value: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        imaging.aspect_ratio(value, "size")
    assert err.value.param == "size"


@pytest.mark.parametrize(
    ("body", "size"),
    [
        ({"image_size": "4k"}, "4K"),
        ({"size": "1024x1024"}, "1K"),
        ({"size": "1536x1024"}, "2K"),
        ({"size": "2048x2048"}, "2K"),
        ({"size": "4096x2304"}, "4K"),
        ({"quality": "hd"}, "2K"),
        ({"quality": "high"}, "2K"),
        ({"size": "1024x1024", "image_size": "2k"}, "2K"),  # the explicit field wins
        ({"image_config": {"image_size": "4k"}}, "4K"),
    ],
)
def test_image_size_from_the_field_else_size_else_quality_in_capitals(
    body: dict[str, Any], size: str
) -> None:
    assert imaging.image_config(body, SIZED, PRO, images_api=True)["imageSize"] == size


def test_image_size_is_sent_only_for_the_listed_models() -> None:
    body = {"size": "1536x1024", "image_size": "4K"}
    assert imaging.image_config(body, SIZED, FLASH, images_api=True) == {"aspectRatio": "3:2"}
    assert imaging.image_config(body, channel(), PRO, images_api=True) == {"aspectRatio": "3:2"}
    assert imaging.image_config({"quality": "low"}, SIZED, PRO, images_api=True) == {}


def test_a_model_matches_by_client_name_or_upstream_name() -> None:
    mapped = channel(
        image_size_models=["gemini-3-pro-image-preview"],
        model_map={"nano-banana-pro": "gemini-3-pro-image-preview"},
    )
    names = imaging.names(mapped, "nano-banana-pro")
    assert names.upstream == "gemini-3-pro-image-preview"
    assert imaging.image_config({"image_size": "2k"}, mapped, names, images_api=False) == {"imageSize": "2K"}
    assert imaging.is_image_model(mapped, names)


@pytest.mark.parametrize(
    "body",
    [
        {"image_config": {"aspect_ratio": "16:9", "image_size": "4k"}},
        {"imageConfig": {"aspectRatio": "16:9", "imageSize": "4k"}},
        {"google": {"image_config": {"aspect_ratio": "16:9", "image_size": "4k"}}},
        {"google": {"imageConfig": {"aspectRatio": "16:9", "imageSize": "4k"}}},
        {"aspect_ratio": "16:9", "image_size": "4k"},
    ],
)
def test_every_spelling_of_image_config_is_read(body: dict[str, Any]) -> None:
    assert imaging.image_config(body, SIZED, PRO, images_api=False) == {
        "aspectRatio": "16:9",
        "imageSize": "4K",
    }


def test_chat_takes_no_size_or_quality() -> None:
    assert imaging.image_config({"size": "1536x1024", "quality": "hd"}, SIZED, PRO, images_api=False) == {}


@pytest.mark.parametrize(
    ("body", "modalities"),
    [
        ({}, ["TEXT", "IMAGE"]),
        ({"modalities": ["image", "text"]}, ["TEXT", "IMAGE"]),
        ({"modalities": ["image"]}, ["IMAGE"]),
        ({"modalities": ["text"]}, ["TEXT"]),
        ({"image_generation": True}, ["IMAGE"]),
    ],
)
def test_chat_modalities_of_an_image_model(body: dict[str, Any], modalities: list[str]) -> None:
    assert imaging.response_modalities(body, channel(), FLASH, images_api=False) == modalities


def test_a_text_model_gets_images_only_when_asked() -> None:
    text = imaging.ModelNames("gemini-2.5-flash", "gemini-2.5-flash")
    assert imaging.response_modalities({}, channel(), text, images_api=False) is None
    assert imaging.response_modalities({"image_generation": True}, channel(), text, images_api=False) == [
        "IMAGE"
    ]
    assert imaging.response_modalities(
        {"modalities": ["image", "text"]}, channel(), text, images_api=False
    ) == [
        "TEXT",
        "IMAGE",
    ]


def test_image_models_setting_replaces_the_name_rule() -> None:
    only = channel(image_models=["nano-banana"])
    assert not imaging.is_image_model(only, FLASH)
    assert imaging.is_image_model(only, imaging.ModelNames("nano-banana", "gemini-2.5-flash-image"))


def test_images_api_forces_image_and_adds_text_where_the_model_needs_it() -> None:
    assert imaging.response_modalities({}, channel(), FLASH, images_api=True) == ["IMAGE"]
    needs = channel(image_text_models=["gemini-2.5-flash-image"])
    assert imaging.response_modalities({}, needs, FLASH, images_api=True) == ["TEXT", "IMAGE"]
    assert imaging.response_modalities({"image_generation": True}, needs, FLASH, images_api=False) == [
        "TEXT",
        "IMAGE",
    ]


HD = channel(model_defaults={"gemini-2.5-flash-image-hd": {"image_size": "4K", "temperature": 0.5}})


def test_model_defaults_fill_what_the_client_left_out() -> None:
    body = {"model": "gemini-2.5-flash-image-hd", "prompt": "a dog"}
    merged = imaging.with_defaults(body, HD, "gemini-2.5-flash-image-hd")
    assert merged["image_size"] == "4K" and merged["temperature"] == 0.5
    assert "image_size" not in body  # the client's body is left alone (it is reused on failover)


@pytest.mark.parametrize(
    "body",
    [
        {"image_size": "1K", "temperature": 1},
        {"image_config": {"image_size": "1K"}, "temperature": 1},
        {"google": {"imageConfig": {"imageSize": "1K"}}, "temperature": 1},
    ],
)
def test_model_defaults_never_override_what_the_client_sent(body: dict[str, Any]) -> None:
    merged = imaging.with_defaults(body, HD, "gemini-2.5-flash-image-hd")
    assert imaging.client_image_fields(merged)["image_size"] == "1K"
    assert merged["temperature"] == 1


def test_model_defaults_are_per_client_model_name() -> None:
    body = {"prompt": "a dog"}
    assert imaging.with_defaults(body, HD, "gemini-2.5-flash-image") is body
