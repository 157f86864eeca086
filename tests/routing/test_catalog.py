from gateway.domain import Operation
from gateway.routing.catalog import Catalog
from gateway.settings import ChannelSettings


def channel(name: str, models: list[str], groups: list[str], **kw: object) -> ChannelSettings:
    return ChannelSettings.model_validate(
        {"name": name, "kind": "mock", "models": models, "groups": groups, **kw}
    )


def chat_only_for_b(ch: ChannelSettings, op: Operation) -> bool:
    return op == "chat" or ch.name != "b"


CHANNELS = [
    channel("a", ["img", "chat-model"], ["default"]),
    channel("b", ["img"], ["default", "economy"]),
    channel("c", ["eco-only"], ["economy"]),
    channel("off", ["img", "ghost"], ["default"], enabled=False),
]


def names(channels: list[ChannelSettings]) -> list[str]:
    return [c.name for c in channels]


def test_group_model_channels() -> None:
    catalog = Catalog(CHANNELS, chat_only_for_b)
    assert names(catalog.candidates("default", "img", "chat")) == ["a", "b"]
    assert names(catalog.candidates("economy", "img", "chat")) == ["b"]
    assert names(catalog.candidates("economy", "eco-only", "chat")) == ["c"]
    assert catalog.candidates("default", "eco-only", "chat") == []
    assert catalog.candidates("nope", "img", "chat") == []


def test_disabled_channels_excluded() -> None:
    catalog = Catalog(CHANNELS, chat_only_for_b)
    assert "off" not in names(catalog.candidates("default", "img", "chat"))
    assert not catalog.serves("default", "ghost")
    assert "ghost" not in catalog.models("default")


def test_supports_filter() -> None:
    catalog = Catalog(CHANNELS, chat_only_for_b)
    assert names(catalog.candidates("default", "img", "images.generate")) == ["a"]
    assert catalog.candidates("economy", "img", "images.edit") == []
    # the model is still served in the group, only not for that operation
    assert catalog.serves("economy", "img")


def test_every_configured_channel_is_listed_and_found_by_name() -> None:
    catalog = Catalog(CHANNELS, chat_only_for_b)
    assert names(catalog.channels()) == ["a", "b", "c", "off"]  # the disabled one too, for the admin API
    off = catalog.channel("off")
    assert off is not None and not off.enabled
    assert catalog.channel("nope") is None
    catalog.channels().clear()  # a copy
    assert len(catalog.channels()) == 4


def test_serves() -> None:
    catalog = Catalog(CHANNELS, chat_only_for_b)
    assert catalog.serves("default", "chat-model")
    assert not catalog.serves("economy", "chat-model")
    assert catalog.serves("economy", "eco-only")


def test_models_per_group_without_duplicates() -> None:
    catalog = Catalog(CHANNELS, chat_only_for_b)
    assert catalog.models("default") == ["img", "chat-model"]
    assert catalog.models("economy") == ["img", "eco-only"]
    assert catalog.models("unknown") == []
    # a copy: callers cannot change the catalog
    catalog.models("default").append("x")
    assert catalog.models("default") == ["img", "chat-model"]
