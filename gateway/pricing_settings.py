"""The `pricing` section of the configuration (§6.4): per call, per image by size x quality, or per million
tokens, as exact decimals; and the base every configuration section shares (unknown keys are errors)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


Money = Annotated[Decimal, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
TokenCount = Annotated[int, Field(ge=0, le=10_000_000)]


class TokenPrices(Section):
    """USD per million tokens, by kind; `cached_text_input` defaults to `text_input`."""

    text_input: Money = Decimal(0)
    cached_text_input: Money | None = None
    image_input: Money = Decimal(0)
    text_output: Money = Decimal(0)
    image_output: Money = Decimal(0)


class ImageOutputTokens(Section):
    """Output tokens of one image by quality: the reservation, and the charge when usage is missing."""

    low: TokenCount
    medium: TokenCount
    high: TokenCount


class ModelPrice(Section):
    """One way to price a model (§6.4): per call, per image by size × quality, or per million tokens."""

    per_call: Money | None = None
    per_image: dict[str, Money | dict[str, Money]] | None = None
    per_million_tokens: TokenPrices | None = None
    estimate_image_output_tokens: ImageOutputTokens | None = None
    estimate_output_tokens: TokenCount | None = None  # chat reservation without max_tokens

    @field_validator("per_image")
    @classmethod
    def _per_image_keys(
        cls, v: dict[str, Decimal | dict[str, Decimal]] | None
    ) -> dict[str, Decimal | dict[str, Decimal]] | None:
        if v is None:
            return v
        if "default" not in v:
            raise ValueError("per_image needs a 'default' entry (the price of any other size)")
        if any(isinstance(e, dict) and not e for e in v.values()):
            raise ValueError("a per_image size needs a price, or at least one quality with a price")
        return {
            k.strip().lower(): {q.strip().lower(): p for q, p in e.items()} if isinstance(e, dict) else e
            for k, e in v.items()
        }

    @model_validator(mode="after")
    def _one_kind(self) -> ModelPrice:
        kinds = [k for k in ("per_call", "per_image", "per_million_tokens") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("set exactly one of per_call, per_image, per_million_tokens")
        return self


class PricingSettings(Section):
    unpriced: Literal["reject", "free"] = "free"  # a model with no entry in `models`
    estimate_output_tokens: TokenCount = 4096  # per_million_tokens reservation without another hint
    # A busy token's reservations are taken from a block of quota the process holds: a block is this many
    # reservations (billing/leases.py); 0 makes every reservation a statement on the token's row.
    quota_block_requests: Annotated[int, Field(ge=0, le=10_000)] = 32
    models: dict[str, ModelPrice] = {}
