"""Markdown images in a chat answer (§3.2) are found in linear time: an upstream answer full of unclosed
`![` or `![a](https://` must not block the event loop (DESIGN 13)."""

from __future__ import annotations

import base64
import random
import re
import subprocess
import sys
import textwrap
from typing import Any, cast

import pytest

from gateway.images.chat_images import ChatImages, markdown_images
from gateway.images.fetch import ImageFetcher
from gateway.storage.memory import MemoryStore
from tests.images.samples import png

# The pattern the scanner replaces; it defines which spans are images.
REFERENCE = re.compile(r"!\[([^\]]*)\]\(\s*((?:data:image/|https?://)[^)\s]+)\s*\)")
PNG_URL = "data:image/png;base64," + base64.b64encode(png((4, 4))).decode()


def chat_images(store: MemoryStore | None = None) -> ChatImages:
    return ChatImages(store, cast(ImageFetcher, None), upload_attempts=1, rehost_urls=False)


def reference(text: str) -> list[tuple[int, int, str, str]]:
    return [(m.start(), m.end(), m.group(1), m.group(2)) for m in REFERENCE.finditer(text)]


@pytest.mark.parametrize(
    "text",
    [
        "plain text",
        "![image](https://x.test/a.png)",
        "a ![x](data:image/png;base64,AAAA) b ![y]( http://h/p.jpg  ) c",
        "![a](ftp://x/y.png) ![b](https://ok)",
        "![[nested]](https://x)",
        "![a](https://x y)",
        "![a](https://x)(https://y) ![![b](https://z)",
        "![a\nb](https://x\n)",
        "![a](https://x ![b](https://y)",
        "![a](https://![b](https://c)",
        "![](https://x)",
        "![a]\n(https://x)",
        "![a](https://x\t\u2003)",
    ],
)
def test_same_spans_as_the_reference_pattern(text: str) -> None:
    assert list(markdown_images(text)) == reference(text)


def test_same_spans_as_the_reference_pattern_on_random_text() -> None:
    rng = random.Random(20261129)
    pieces = "![ ] ( ) \n a ! [ https:// http:// data:image/ x.png \t ]( ![a]( http s:// \u2003".split(" ")
    pieces += [" "]
    for _ in range(10000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
        assert list(markdown_images(text)) == reference(text), repr(text)


async def test_data_urls_are_rehosted_and_other_text_is_kept() -> None:
    store = MemoryStore()
    images = chat_images(store)
    message: dict[str, Any] = {"content": f"Here ![pic]({PNG_URL}) and ![link](https://x.test/a.png) ![ end"}
    await images.message(message)
    assert images.count == 2
    (key,) = store.objects
    assert (
        message["content"]
        == f"Here ![pic](http://storage.test/{key}) and ![link](https://x.test/a.png) ![ end"
    )


# An answer of about 2 MB made of one unclosed piece, then text and one real image. The quadratic
# pattern took minutes on these; the scan must finish at once. It runs in a child process so that a
# regression fails this test (after a generous 10 s) instead of hanging the suite.
HOSTILE = ["![", "![a](https://", "![a](https://x  ", "![a]( ", "![a](https://x](  https://y)"]
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from gateway.images.chat_images import ChatImages

    piece = sys.argv[1]
    text = piece * (2_000_000 // len(piece)) + " ] tail ![ok](https://x.test/ok.png)"
    images = ChatImages(None, None, upload_attempts=1, rehost_urls=False)
    message = {"content": text}
    asyncio.run(images.message(message))
    assert message["content"] == text
    print(images.count, len(text))
    """
)


@pytest.mark.parametrize("piece", HOSTILE)
def test_two_megabytes_of_unclosed_markdown_is_scanned_in_linear_time(piece: str) -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, piece], capture_output=True, text=True, timeout=10, check=True
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"scanning 2 MB of {piece!r} did not finish within 10 s: the scan is not linear")
    count, length = map(int, done.stdout.split())
    assert length > 2_000_000
    assert count == 1  # only the real image at the end


async def test_an_image_in_markdown_and_in_images_is_stored_once_and_counted_once() -> None:
    """OpenRouter-shaped answers (and the Gemini protocol path) carry each image twice: in the markdown
    of `content` and in `images[]`. It is one image: one object in storage, one image billed."""
    store = MemoryStore()
    images = chat_images(store)
    message: dict[str, Any] = {
        "content": f"Here it is\n\n![image]({PNG_URL})",
        "images": [{"type": "image_url", "image_url": {"url": PNG_URL}}],
    }
    await images.message(message)
    (key,) = store.objects
    url = f"http://storage.test/{key}"
    assert message["content"] == f"Here it is\n\n![image]({url})"
    assert message["images"] == [{"type": "image_url", "image_url": {"url": url}}]
    assert images.count == 1


async def test_the_same_image_in_two_stream_deltas_is_stored_once() -> None:
    store = MemoryStore()
    images = chat_images(store)
    first: dict[str, Any] = {"content": f"![image]({PNG_URL})"}
    second: dict[str, Any] = {"images": [{"type": "image_url", "image_url": {"url": PNG_URL}}]}
    await images.message(first)
    await images.message(second)
    assert len(store.objects) == 1 and images.count == 1
    assert second["images"][0]["image_url"]["url"] in first["content"]
