"""Prices (§6.4), pure: the reservation estimate and the real cost of one request, in micro-USD.

The money rule: a request's amount is computed exactly with `Decimal` (prices × quantities × the group's
ratio, nothing rounded on the way) and rounded half-up to a whole micro-USD once, at the very end. The
estimate follows the same rule, so a per-call or per-image request that delivers what it asked for
settles with no difference at all. Billing always uses the model name the client asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from gateway.domain import JSONObject, Operation, Usage
from gateway.errors import ServiceUnavailable
from gateway.pricing_settings import ModelPrice, PricingSettings, TokenPrices
from gateway.settings import GroupSettings

log = logging.getLogger("gateway.billing")

MICRO = Decimal(1_000_000)
MILLION = Decimal(1_000_000)
PROMPT_BYTES_PER_TOKEN = 3  # a generous bound: ~4 bytes per token in English, ~3 (one character) in CJK
_QUALITY_TIER = {"low": "low", "medium": "medium", "standard": "medium", "high": "high", "hd": "high"}


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the estimate reads from the client's request."""

    operation: Operation
    n: int = 1
    size: str | None = None
    quality: str | None = None
    prompt_tokens: int = 0  # estimated from the prompt's UTF-8 size
    max_output_tokens: int | None = None  # chat: max_completion_tokens / max_tokens


@dataclass(frozen=True, slots=True)
class Charge:
    """A request's cost and the unit price it was charged at, both in micro-USD after the group ratio."""

    cost_micro_usd: int
    unit_price_micro_usd: int
    usage_estimated: bool = False


FREE = Charge(0, 0)


def to_micro(amount: Decimal) -> int:
    """The one rounding step: half-up to a whole micro-USD."""
    return int((amount * MICRO).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def request_facts(operation: Operation, body: JSONObject, prompt: bool = True) -> RequestFacts:
    """The estimate's inputs, read defensively from the client's JSON (or multipart fields). `prompt`:
    whether the price needs the prompt's size (per million tokens; per call and per image do not)."""
    if operation == "chat":
        limit = _positive_int(body.get("max_completion_tokens")) or _positive_int(body.get("max_tokens"))
        tokens = _tokens(_text_bytes(body.get("messages"))) if prompt else 0
        return RequestFacts(operation, prompt_tokens=tokens, max_output_tokens=limit)
    n = _positive_int(body.get("n")) or 1
    text = body.get("prompt") if prompt else None
    return RequestFacts(
        operation,
        n=min(n, 10),
        size=_text(body.get("size")),
        quality=_text(body.get("quality")),
        prompt_tokens=_tokens(len(text.encode()) if isinstance(text, str) else 0),
    )


def image_price(
    table: Mapping[str, Decimal | dict[str, Decimal]], size: str | None, quality: str | None
) -> Decimal:
    """`per_image`: the entry of the size (else `default`), then of the quality (else the entry's
    `default`, else its cheapest quality: the upstreams' default quality is their cheapest)."""
    entry = table.get(size.strip().lower()) if size else None
    if entry is None:
        entry = table["default"]
    if isinstance(entry, Decimal):
        return entry
    q = quality.strip().lower() if quality else None
    if q is not None and q in entry:
        return entry[q]
    return entry.get("default", min(entry.values(), default=Decimal(0)))


class PriceBook:
    """The configured prices and group ratios, and what `pricing.unpriced` says about other models."""

    def __init__(self, pricing: PricingSettings, groups: Mapping[str, GroupSettings]) -> None:
        self._pricing = pricing
        self._ratios = {name: Decimal(str(g.ratio)) for name, g in groups.items()}
        self._warned: set[str] = set()
        # Per call and per image, a request's amounts depend on (unit price, count, group) only: the
        # Decimal work is done once for each (bounded: cleared when full).
        self._charges: dict[tuple[Decimal, int, str], Charge] = {}

    def price_for(self, model: str) -> ModelPrice | None:
        """The model's price; None when it is free. Raises 503 `model_price_not_set` under `reject`."""
        price = self._pricing.models.get(model)
        if price is not None:
            return price
        if self._pricing.unpriced == "reject":
            raise ServiceUnavailable(
                f"The model '{model}' has no price configured; ask the operator to set one.",
                code="model_price_not_set",
            )
        if model not in self._warned and len(self._warned) < 10_000:
            self._warned.add(model)
            log.warning("model %r has no price: served free (pricing.unpriced: free)", model)
        return None

    def ratio(self, group: str) -> Decimal:
        return self._ratios.get(group, Decimal(1))

    def estimate(self, price: ModelPrice, group: str, facts: RequestFacts) -> int:
        """The reservation: an upper bound of the cost, in micro-USD."""
        if price.per_call is not None:
            return self._counted(price.per_call, facts.n, group).cost_micro_usd
        if price.per_image is not None:
            unit = image_price(price.per_image, facts.size, facts.quality)
            return self._counted(unit, facts.n, group).cost_micro_usd
        tokens = _tokens_of(price)
        if facts.operation == "chat":
            out = (
                facts.max_output_tokens
                or price.estimate_output_tokens
                or self._pricing.estimate_output_tokens
            )
        else:
            out = facts.n * self._image_tokens(price, facts.quality)
        amount = tokens.text_input * facts.prompt_tokens + max(tokens.text_output, tokens.image_output) * out
        return to_micro(amount / MILLION * self.ratio(group))

    def cost(
        self,
        price: ModelPrice,
        group: str,
        facts: RequestFacts,
        *,
        usage: Usage | None,
        images: int,
        size: str | None,
        quality: str | None,
    ) -> Charge:
        """The real cost of an answer: per image delivered, or on the upstream's token usage."""
        if price.per_call is not None or price.per_image is not None:
            unit = (
                price.per_call
                if price.per_call is not None
                else image_price(price.per_image or {}, size, quality)
            )
            count = max(images, 1) if facts.operation == "chat" else images  # a chat answer is one call
            return self._counted(unit, count, group)
        ratio = self.ratio(group)
        tokens = _tokens_of(price)
        estimated = usage is None or usage == Usage()
        if estimated:
            image_tokens = images * self._image_tokens(price, quality)
            usage = Usage(text_input_tokens=facts.prompt_tokens, image_output_tokens=image_tokens)
        assert usage is not None
        unit = tokens.image_output if (images or usage.image_output_tokens) else tokens.text_output
        amount = token_amount(tokens, usage)
        return Charge(to_micro(amount * ratio), to_micro(unit * ratio), estimated)

    def _counted(self, unit: Decimal, count: int, group: str) -> Charge:
        """`count` items at `unit` USD in the group: the cost and the unit price, each rounded once."""
        key = (unit, count, group)
        charge = self._charges.get(key)
        if charge is None:
            if len(self._charges) >= 4096:
                self._charges.clear()
            ratio = self.ratio(group)
            charge = self._charges[key] = Charge(to_micro(unit * count * ratio), to_micro(unit * ratio))
        return charge

    def _image_tokens(self, price: ModelPrice, quality: str | None) -> int:
        table = price.estimate_image_output_tokens
        if table is None:
            return price.estimate_output_tokens or self._pricing.estimate_output_tokens
        tier = _QUALITY_TIER.get(quality.strip().lower() if quality else "", "high")  # unknown: the bound
        return int(getattr(table, tier))


def token_amount(prices: TokenPrices, usage: Usage) -> Decimal:
    """USD of a usage split at per-million prices. Cached tokens are charged at the cached price; when
    the upstream's text count already holds them (the splits add up to more than the prompt), they are
    taken out of it so that they are not charged twice."""
    cached_price = prices.cached_text_input if prices.cached_text_input is not None else prices.text_input
    text_in = usage.text_input_tokens
    cached = usage.cached_input_tokens
    if cached and usage.prompt_tokens and text_in + cached + usage.image_input_tokens > usage.prompt_tokens:
        text_in = max(text_in - cached, 0)
    total = (
        prices.text_input * text_in
        + cached_price * cached
        + prices.image_input * usage.image_input_tokens
        + prices.text_output * usage.text_output_tokens
        + prices.image_output * usage.image_output_tokens
    )
    return total / MILLION


def _tokens_of(price: ModelPrice) -> TokenPrices:
    assert price.per_million_tokens is not None  # ModelPrice guarantees exactly one kind
    return price.per_million_tokens


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _tokens(n_bytes: int) -> int:
    return -(-n_bytes // PROMPT_BYTES_PER_TOKEN)


def _text_bytes(messages: Any) -> int:
    """UTF-8 bytes of every text in the messages (strings and `text` parts); images are not counted."""
    total = 0
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content.encode())
        elif isinstance(content, list):
            for part in content:
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str):
                    total += len(text.encode())
    return total
