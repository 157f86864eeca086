import base64

import pytest
from PIL import Image

from gateway.errors import InvalidImage
from gateway.images.sniff import ImageInfo, decode_base64_image, parse_data_url, require_image, sniff
from tests.images.samples import fixture_bytes, make_image, png


@pytest.mark.parametrize(
    ("fmt", "size", "mode", "save", "mime", "ext"),
    [
        ("PNG", (37, 19), "RGB", {}, "image/png", "png"),
        ("PNG", (4096, 2304), "RGBA", {}, "image/png", "png"),
        ("JPEG", (41, 23), "RGB", {}, "image/jpeg", "jpg"),
        ("JPEG", (640, 480), "RGB", {"progressive": True}, "image/jpeg", "jpg"),
        ("JPEG", (33, 65), "RGB", {"exif": Image.Exif(), "icc_profile": b"\0" * 3000}, "image/jpeg", "jpg"),
        ("WEBP", (300, 17), "RGB", {"quality": 50}, "image/webp", "webp"),
        ("WEBP", (16383, 3), "RGB", {"lossless": True}, "image/webp", "webp"),
        ("WEBP", (51, 77), "RGBA", {"quality": 50}, "image/webp", "webp"),
        ("GIF", (300, 200), "P", {}, "image/gif", "gif"),
    ],
)
def test_sniff_reads_type_and_size_of_real_images(
    fmt: str, size: tuple[int, int], mode: str, save: dict[str, object], mime: str, ext: str
) -> None:
    data = make_image(fmt, size, mode, **save)
    assert sniff(data) == ImageInfo(mime, ext, size[0], size[1])
    assert sniff(memoryview(data)) == ImageInfo(mime, ext, size[0], size[1])


def test_webp_variants_cover_all_three_chunk_kinds() -> None:
    kinds = {
        make_image("WEBP", (8, 8), quality=50)[12:16],
        make_image("WEBP", (8, 8), lossless=True)[12:16],
        make_image("WEBP", (8, 8), "RGBA", quality=50)[12:16],
    }
    assert kinds == {b"VP8 ", b"VP8L", b"VP8X"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("red-3x2.png", ImageInfo("image/png", "png", 3, 2)),
        ("green-5x4.jpg", ImageInfo("image/jpeg", "jpg", 5, 4)),
        ("blue-7x3.webp", ImageInfo("image/webp", "webp", 7, 3)),
        ("blue-6x5-lossless.webp", ImageInfo("image/webp", "webp", 6, 5)),
        ("blue-9x8-alpha.webp", ImageInfo("image/webp", "webp", 9, 8)),
        ("dot-2x3.gif", ImageInfo("image/gif", "gif", 2, 3)),
    ],
)
def test_sniff_recorded_files(name: str, expected: ImageInfo) -> None:
    assert require_image(fixture_bytes(name)) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world",
        b"<!DOCTYPE html><html><body>not found</body></html>",
        b'{"error": {"message": "bad"}}',
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        b"\x89PNX\r\n\x1a\n" + b"\0" * 30,
    ],
)
def test_non_images_are_not_recognised(data: bytes) -> None:
    assert sniff(data) is None
    with pytest.raises(InvalidImage) as err:
        require_image(data, "image[0]")
    assert err.value.code == "invalid_image"
    assert err.value.status == 400
    assert err.value.message.startswith("image[0] is ")


def test_require_image_names_the_accepted_types() -> None:
    with pytest.raises(InvalidImage, match="is not a PNG, JPEG, WEBP or GIF image"):
        require_image(b"GIF88a????", "the mask")


def test_truncated_headers_keep_the_type_without_a_size() -> None:
    assert sniff(b"\x89PNG\r\n\x1a\n") == ImageInfo("image/png", "png", None, None)
    assert sniff(b"\xff\xd8\xff\xe0\x00\x10JFIF") == ImageInfo("image/jpeg", "jpg", None, None)
    assert sniff(b"GIF89a\x01") == ImageInfo("image/gif", "gif", None, None)
    assert sniff(png()[:20]) == ImageInfo("image/png", "png", None, None)


def test_base64_decodes_clean_padded_input() -> None:
    data = png()
    assert decode_base64_image(base64.b64encode(data).decode(), "image") == data
    assert decode_base64_image(base64.b64encode(data), "image") == data


def test_base64_tolerates_missing_padding_and_whitespace() -> None:
    data = png((5, 5))
    data += b"x" * (1 + (-len(data) % 3))  # a length that needs padding
    b64 = base64.b64encode(data).decode()
    assert b64.endswith("=")
    assert decode_base64_image(b64.rstrip("="), "image") == data
    wrapped = "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76)) + "\r\n"
    assert decode_base64_image(" " + wrapped, "image") == data
    assert decode_base64_image(base64.encodebytes(data), "image") == data


@pytest.mark.parametrize("bad", ["not base64!", "aGVs*bG8=", "aGVsbG8=xx", "a", "é", "   \n"])
def test_invalid_base64_is_refused(bad: str) -> None:
    with pytest.raises(InvalidImage, match=r"^image\[1\] is (not valid base64|empty)$"):
        decode_base64_image(bad, "image[1]")


def test_empty_base64_is_refused() -> None:
    with pytest.raises(InvalidImage, match="is empty"):
        decode_base64_image("", "image")


def test_url_safe_alphabet_is_not_standard_base64() -> None:
    with pytest.raises(InvalidImage, match="not valid base64"):
        decode_base64_image(base64.urlsafe_b64encode(b"\xfb\xff\xfe" * 10), "image")


def test_data_url_is_parsed() -> None:
    data = make_image("JPEG", (10, 10))
    b64 = base64.b64encode(data).decode()
    assert parse_data_url(f"data:image/jpeg;base64,{b64}", "image_url") == data
    assert parse_data_url(f"DATA:Image/PNG;BASE64,{b64}", "image_url") == data
    assert parse_data_url(f"data:image/png;charset=binary;base64,{b64}", "image_url") == data
    assert parse_data_url(f"data:;base64,{b64}", "image_url") == data
    assert parse_data_url(f"data:application/octet-stream;base64,{b64}", "image_url") == data


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://example.com/a.png", "not a valid data URL"),
        ("data:image/png;base64", "not a valid data URL"),
        ("data:image/png," + "iVBORw0KGgo=", "without ;base64"),
        ("data:text/plain;base64,aGVsbG8=", "of type 'text/plain', not an image"),
        ("data:image/png;base64,!!!!", "not valid base64"),
        ("data:image/png;base64,", "is empty"),
        ("data:image/png;" + "x" * 300 + ";base64,aGVsbG8=", "not a valid data URL"),
    ],
)
def test_malformed_data_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(InvalidImage, match=reason) as err:
        parse_data_url(url, "messages[0].content[1].image_url")
    assert err.value.message.startswith("messages[0].content[1].image_url ")
