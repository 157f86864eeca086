"""OpenAI-shaped requests → the `generateContent` body (§3.4 chat, §4.2 Images API).

Pure translation: input images are turned into bytes by the injected `ImageResolver`, so nothing here
touches the network. The result names the upstream model and how many calls to make (`n` > 1 of the
Images API is that many calls: image models give one candidate per call, UPSTREAM.md §1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson
import pybase64

from gateway.domain import ImageCall, ImageResolver, JSONObject
from gateway.errors import InvalidRequest
from gateway.providers.gemini import imaging
from gateway.providers.gemini.messages import conversation, inline_part
from gateway.settings import ChannelSettings

# Prompt image references (seed 001: "https://…/x.png 移除图片的背景"): URL characters only, so a
# prompt in another script that follows without a space is not swallowed. Linear: one pass, no nesting.
_PROMPT_URL = re.compile(
    r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+|data:image/[A-Za-z0-9.+\-]+;base64,[A-Za-z0-9+/=]+"
)
_URL_TAIL = ".,;:!?'\")]"
MAX_CALLS = 10


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """One `generateContent` body for `model`, to be sent `calls` times."""

    model: str  # the upstream model name
    body: JSONObject
    calls: int = 1
    keep_base64: bool = False  # the answer's images go back as base64: keep the text, never decode it

    def payload(self) -> bytes:
        return orjson.dumps(self.body)


def _generation_config(body: JSONObject) -> JSONObject:
    """The OpenAI sampling fields Gemini has (§3.4); absent ones are left to the model."""
    config: JSONObject = {}
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = stop
    if body.get("seed") is not None:
        config["seed"] = body["seed"]
    return config


def _output_config(
    body: JSONObject, channel: ChannelSettings, model: imaging.ModelNames, *, images_api: bool
) -> JSONObject:
    config: JSONObject = {}
    modalities = imaging.response_modalities(body, channel, model, images_api=images_api)
    if modalities is not None:
        config["responseModalities"] = modalities
    if modalities is not None and "IMAGE" in modalities:
        image_config = imaging.image_config(body, channel, model, images_api=images_api)
        if image_config:
            config["imageConfig"] = image_config
    return config


def _safety(body: JSONObject, gemini: JSONObject) -> None:
    settings = body.get("safety_settings", body.get("safetySettings"))
    if isinstance(settings, list):
        gemini["safetySettings"] = settings


async def chat_request(
    body: JSONObject, *, channel: ChannelSettings, model: str, resolve: ImageResolver
) -> GenerateRequest:
    """A chat completion request (`model` as the client named it) as one `generateContent` call."""
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest(
            "This model answers one choice per request; leave n out or set it to 1.", param="n"
        )
    body = imaging.with_defaults(body, channel, model)
    names = imaging.names(channel, model)
    messages = body.get("messages")
    conv = await conversation(messages if isinstance(messages, list) else [], resolve)
    gemini: JSONObject = {"contents": conv.contents}
    if conv.system:
        gemini["systemInstruction"] = {"parts": conv.system}
    config = {**_generation_config(body), **_output_config(body, channel, names, images_api=False)}
    if config:
        gemini["generationConfig"] = config
    _safety(body, gemini)
    return GenerateRequest(names.upstream, gemini)


def prompt_images(prompt: str) -> tuple[str, list[str]]:
    """The prompt without its image URLs (http(s) and `data:image/`), and those URLs in order."""
    urls: list[str] = []
    parts: list[str] = []
    last = 0
    for match in _PROMPT_URL.finditer(prompt):
        url = match.group(0)
        if url.startswith("http"):
            url = url.rstrip(_URL_TAIL)
        urls.append(url)
        parts.append(prompt[last : match.start()])
        last = match.start() + len(url)
    parts.append(prompt[last:])
    return " ".join(" ".join(parts).split()), urls


async def images_request(
    call: ImageCall, *, channel: ChannelSettings, model: str, resolve: ImageResolver
) -> GenerateRequest:
    """A generations or edits request as `n` identical `generateContent` calls (§4.2, §4.4).

    Input images (edits' `images[].image_url`, multipart files, and image URLs in the prompt when the
    channel's `prompt_image_urls` is on, as it is by default) become `inlineData` parts before the text.
    """
    body = imaging.with_defaults(call.body, channel, model)
    names = imaging.names(channel, model)
    n = body.get("n") or 1
    if not isinstance(n, int) or not 1 <= n <= MAX_CALLS:
        raise InvalidRequest(f"n must be between 1 and {MAX_CALLS}", param="n")
    if any(part.field == "mask" for part in call.files) or body.get("mask"):
        raise InvalidRequest(
            "This model edits without a mask; describe the change in the prompt.", param="mask"
        )
    prompt = str(body.get("prompt") or "")
    urls: list[str] = []
    if channel.prompt_image_urls is not False:
        prompt, urls = prompt_images(prompt)
    parts: list[JSONObject] = []
    for index, ref in enumerate(body.get("images") or []):
        url = ref.get("image_url") if isinstance(ref, dict) else None
        if not isinstance(url, str) or not url:
            raise InvalidRequest(
                "This model takes input images as image_url (https or data: URL), not file_id.",
                param=f"images[{index}].image_url",
            )
        parts.append(inline_part(await resolve(url, f"images[{index}].image_url"), signed=False))
    for part in call.files:
        parts.append({"inlineData": {"mimeType": part.mime, "data": pybase64.b64encode_as_string(part.data)}})
    for index, url in enumerate(urls):
        parts.append(inline_part(await resolve(url, f"image URL #{index + 1} in prompt"), signed=False))
    if not prompt and not parts:
        raise InvalidRequest("prompt must not be empty", param="prompt")
    if prompt:
        parts.append({"text": prompt})
    gemini: JSONObject = {
        "contents": [{"role": "user", "parts": parts}],
        "generationConfig": _output_config(body, channel, names, images_api=True),
    }
    _safety(body, gemini)
    return GenerateRequest(names.upstream, gemini, calls=n, keep_base64=not call.decode_images)
