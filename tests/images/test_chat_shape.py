"""§3.2 in one place: each image as markdown and as an `images[]` entry, what is missing added, and
`message.image` per `chat_image_field`."""

from __future__ import annotations

import base64
from typing import Any

from gateway.images.chat_shape import ShownImage, image_field, show

URL = "https://store.test/a.png"
DATA = b"\x89PNG\r\n\x1a\nimage"


def test_a_text_only_message_gets_markdown_and_images() -> None:
    message: dict[str, Any] = {"role": "assistant", "content": "Here it is."}
    show(message, [ShownImage(URL)], "none")
    assert message == {
        "role": "assistant",
        "content": f"Here it is.\n\n![image]({URL})",
        "images": [{"type": "image_url", "image_url": {"url": URL}}],
    }


def test_what_the_answer_already_has_is_not_added_twice() -> None:
    message: dict[str, Any] = {
        "content": f"![pic]({URL})",
        "images": [{"type": "image_url", "image_url": {"url": URL}}],
    }
    show(message, [ShownImage(URL)], "none")
    assert message["content"] == f"![pic]({URL})" and len(message["images"]) == 1


def test_an_image_listed_only_in_images_gets_its_markdown() -> None:
    message: dict[str, Any] = {"content": None, "images": [{"type": "image_url", "image_url": {"url": URL}}]}
    show(message, [ShownImage(URL)], "none", lead="\n\n")
    assert message["content"] == f"\n\n![image]({URL})"


def test_list_data_carries_the_base64_of_each_image() -> None:
    inline = "data:image/png;base64," + base64.b64encode(b"inline").decode()
    message: dict[str, Any] = {"content": ""}
    show(
        message,
        [ShownImage(URL, DATA), ShownImage(inline), ShownImage("https://x.test/unknown.png")],
        "list_data",
    )
    assert message["image"] == [
        {"data": base64.b64encode(DATA).decode()},
        {"data": base64.b64encode(b"inline").decode()},
    ]  # an image whose bytes are not known is left out


def test_object_url_is_the_first_image() -> None:
    message: dict[str, Any] = {"content": ""}
    show(message, [ShownImage(URL), ShownImage("https://store.test/b.png")], "object_url")
    assert message["image"] == {"url": URL}


def test_no_images_changes_nothing() -> None:
    message: dict[str, Any] = {"content": "text"}
    show(message, [], "list_data")
    assert message == {"content": "text"}


def test_the_tokens_choice_wins_over_the_global_setting() -> None:
    assert image_field("list_data", "object_url") == "list_data"
    assert image_field(None, "object_url") == "object_url"
    assert image_field(None, "none") == "none"
    assert image_field("bogus", "bogus") == "none"
