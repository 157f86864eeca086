"""Images API requests (§4.1, §4.4). Unknown fields are kept and forwarded.

JSON numbers are strict, as the OpenAPI document says: an integer is a JSON integer, never a string or a
boolean. A multipart form's fields are text, so its model takes integers and booleans written as text.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ImagesGenerateRequest(_Open):
    model: StrictStr = Field(min_length=1)
    prompt: StrictStr = Field(min_length=1)
    n: StrictInt | None = Field(None, ge=1, le=10)
    size: StrictStr | None = None
    quality: StrictStr | None = None
    response_format: Literal["url", "b64_json"] | None = None
    background: StrictStr | None = None
    output_format: StrictStr | None = None
    output_compression: StrictInt | None = Field(None, ge=0, le=100)
    moderation: StrictStr | None = None
    style: StrictStr | None = None
    user: StrictStr | None = None
    stream: StrictBool | None = None
    partial_images: StrictInt | None = Field(None, ge=0, le=3)
    group: StrictStr | None = None


class ImageRef(_Open):
    image_url: StrictStr | None = None
    file_id: StrictStr | None = None


class ImagesEditRequest(ImagesGenerateRequest):
    images: list[ImageRef] = Field(min_length=1, max_length=16)
    mask: ImageRef | None = None
    input_fidelity: StrictStr | None = None


class ImagesEditForm(ImagesGenerateRequest):
    """The scalar fields of a multipart edit (files are checked separately)."""

    n: int | None = Field(None, ge=1, le=10)
    output_compression: int | None = Field(None, ge=0, le=100)
    partial_images: int | None = Field(None, ge=0, le=3)
    stream: bool | None = None


class ImagesEditMultipart(ImagesEditForm):
    """A multipart edit as the OpenAPI document describes it: the image files and the scalar fields."""

    image: list[bytes] = Field(
        min_length=1,
        max_length=16,
        description="one part per image file (PNG, JPEG, WEBP or GIF); `image[]` and `image[N]` work too",
    )
    mask: bytes | None = Field(None, description="a PNG mask for the first image")
