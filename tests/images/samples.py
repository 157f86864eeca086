"""Image bytes for tests: made with Pillow on the fly, or read from tests/fixtures/images/."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "images"


def make_image(fmt: str, size: tuple[int, int] = (32, 24), mode: str = "RGB", **save: Any) -> bytes:
    """An image of `size` in Pillow format `fmt` (PNG, JPEG, WEBP, GIF)."""
    color: Any = (30, 120, 200, 128) if mode == "RGBA" else 1 if mode == "P" else (30, 120, 200)
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format=fmt, **save)
    return buf.getvalue()


def png(size: tuple[int, int] = (32, 24)) -> bytes:
    return make_image("PNG", size)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()
