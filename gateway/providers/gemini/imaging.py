"""Image output options for `generateContent`: which modalities, and `imageConfig` (§3.1, §4.2, §6.1).

Pure functions of the client's body and the channel's settings. Model lists come from the channel
(`image_models`, `image_size_models`, `image_text_models`); a model matches by the name the client
asked for or by the upstream name it maps to.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from gateway.domain import JSONObject
from gateway.errors import InvalidRequest
from gateway.settings import ChannelSettings

# AI Studio's ImageConfig.aspectRatio values (js-genai `types.ImageConfig` docs; UPSTREAM.md §1).
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
# §4.2: the OpenAI sizes clients send, and the ratio each one means.
SIZE_RATIOS = {
    "1024x1024": "1:1",
    "1536x1024": "3:2",
    "1024x1536": "2:3",
    "1792x1024": "16:9",
    "1024x1792": "9:16",
}
_SIZE = re.compile(r"\s*(\d{1,5})\s*[xX×*]\s*(\d{1,5})\s*")
_RATIO = re.compile(r"\s*(\d{1,3})\s*:\s*(\d{1,3})\s*")
_IMAGE_KEYS = {"aspect_ratio": ("aspect_ratio", "aspectRatio"), "image_size": ("image_size", "imageSize")}
_HIGH_QUALITY = frozenset({"hd", "high"})


@dataclass(frozen=True, slots=True)
class ModelNames:
    """The model as the client named it and as the upstream knows it."""

    client: str
    upstream: str

    def listed_in(self, names: list[str]) -> bool:
        return self.client in names or self.upstream in names


def names(channel: ChannelSettings, model: str) -> ModelNames:
    return ModelNames(model, channel.upstream_model(model))


def is_image_model(channel: ChannelSettings, model: ModelNames) -> bool:
    if channel.image_models is not None:
        return model.listed_in(channel.image_models)
    return "image" in model.client.lower() or "image" in model.upstream.lower()


def with_defaults(body: JSONObject, channel: ChannelSettings, model: str) -> JSONObject:
    """The body with the channel's `model_defaults` for `model` filled in where the client sent nothing.

    `image_size` and `aspect_ratio` count as sent in any spelling (§3.1), so a default never overrides
    the client's own choice. The client's body is not changed.
    """
    defaults = channel.model_defaults.get(model)
    if not defaults:
        return body
    merged = dict(body)
    sent = client_image_fields(body)
    for key, value in defaults.items():
        if key in _IMAGE_KEYS:
            if sent.get(key) is None:
                merged[key] = value
        elif key not in body:
            merged[key] = value
    return merged


def _config_objects(body: JSONObject) -> list[dict[str, Any]]:
    """Every place an image config may be: top level, `image_config`/`imageConfig`, and under `google`."""
    found: list[dict[str, Any]] = [body]
    google = body.get("google")
    for holder in (body, google if isinstance(google, dict) else {}):
        for key in ("image_config", "imageConfig"):
            value = holder.get(key)
            if isinstance(value, dict):
                found.append(value)
    return found


def client_image_fields(body: JSONObject) -> dict[str, str | None]:
    """`aspect_ratio` and `image_size` as the client sent them, in any spelling; None when absent."""
    fields: dict[str, str | None] = {"aspect_ratio": None, "image_size": None}
    for holder in _config_objects(body):
        for name, spellings in _IMAGE_KEYS.items():
            for spelling in spellings:
                value = holder.get(spelling)
                if value is not None and fields[name] is None:
                    if not isinstance(value, str | int):
                        raise InvalidRequest(f"{spelling} must be a string", param=spelling)
                    fields[name] = str(value)
    return fields


def aspect_ratio(value: str, param: str) -> str | None:
    """A literal ratio as is, `WxH` as the §4.2 ratio or the nearest supported one, `auto` as none."""
    text = value.strip()
    if not text or text.lower() == "auto":
        return None
    if (ratio := _RATIO.fullmatch(text)) is not None:
        if int(ratio.group(1)) == 0 or int(ratio.group(2)) == 0:
            raise InvalidRequest(f"{param} {value!r} is not a valid aspect ratio", param=param)
        return f"{int(ratio.group(1))}:{int(ratio.group(2))}"
    size = _size(text, param)
    known = SIZE_RATIOS.get(f"{size[0]}x{size[1]}")
    return known if known is not None else nearest_ratio(*size)


def nearest_ratio(width: int, height: int) -> str:
    """The supported ratio closest to width:height (compared as logarithms: 2:1 and 1:2 are equally far)."""
    wanted = math.log(width / height)

    def distance(ratio: str) -> float:
        a, b = ratio.split(":")
        return abs(math.log(int(a) / int(b)) - wanted)

    return min(ASPECT_RATIOS, key=distance)


def _size(text: str, param: str) -> tuple[int, int]:
    match = _SIZE.fullmatch(text)
    if match is None or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        raise InvalidRequest(
            f"{param} {text!r} is neither WIDTHxHEIGHT, a ratio such as 16:9, nor auto", param=param
        )
    return int(match.group(1)), int(match.group(2))


def size_class(value: str) -> str | None:
    """§4.2: the larger side of `WxH` as 1K (≤1024), 2K (≤2048) or 4K; None for `auto` or a ratio."""
    match = _SIZE.fullmatch(value)
    if match is None:
        return None
    side = max(int(match.group(1)), int(match.group(2)))
    return "1K" if side <= 1024 else "2K" if side <= 2048 else "4K"


def image_config(
    body: JSONObject, channel: ChannelSettings, model: ModelNames, *, images_api: bool
) -> JSONObject:
    """`imageConfig` for the request: aspectRatio and, for `image_size_models` only, imageSize in capitals."""
    fields = client_image_fields(body)
    config: JSONObject = {}
    ratio_source = fields["aspect_ratio"]
    size = body.get("size") if images_api else None
    if ratio_source is not None:
        ratio = aspect_ratio(ratio_source, "aspect_ratio")
    elif isinstance(size, str):
        ratio = aspect_ratio(size, "size")
    else:
        ratio = None
    if ratio is not None:
        config["aspectRatio"] = ratio
    if model.listed_in(channel.image_size_models):
        image_size = fields["image_size"]
        if image_size is None and images_api:
            image_size = _size_from_request(body)
        if image_size:
            # Gemini silently falls back to 1K on a lower-case "4k" (UPSTREAM.md §1).
            config["imageSize"] = image_size.strip().upper()
    return config


def _size_from_request(body: JSONObject) -> str | None:
    size, quality = body.get("size"), body.get("quality")
    derived = size_class(size) if isinstance(size, str) else None
    if derived is None and isinstance(quality, str) and quality.lower() in _HIGH_QUALITY:
        derived = "2K"
    return derived


def response_modalities(
    body: JSONObject, channel: ChannelSettings, model: ModelNames, *, images_api: bool
) -> list[str] | None:
    """`responseModalities`, or None to leave the upstream's default (text).

    The Images API and `image_generation: true` force image output: `["IMAGE"]`, or `["TEXT", "IMAGE"]`
    for the channel's `image_text_models`. `modalities` (OpenRouter style) says exactly what the client
    wants. Otherwise image models answer text and images, as a chat can (§3.4).
    """
    image_only = ["TEXT", "IMAGE"] if model.listed_in(channel.image_text_models) else ["IMAGE"]
    if images_api:
        return image_only
    modalities = body.get("modalities")
    if isinstance(modalities, list):
        wanted = {str(m).lower() for m in modalities}
        if "image" in wanted:
            return ["TEXT", "IMAGE"] if "text" in wanted else image_only
        return ["TEXT"] if "text" in wanted else None
    if body.get("image_generation") is True:
        return image_only
    return ["TEXT", "IMAGE"] if is_image_model(channel, model) else None
