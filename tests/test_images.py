"""Images are made acceptable to every backend before anything is paid."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from bot.engine.images import MAX_BYTES, ImageError, prepare_image


def encoded(width: int, height: int, fmt: str = "JPEG", mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), "teal").save(out, fmt)
    return out.getvalue()


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_a_good_jpeg_is_passed_through_untouched() -> None:
    data = encoded(1280, 720)
    image = prepare_image(data)
    assert image.data == data and image.mime_type == "image/jpeg"
    assert (image.width, image.height) == (1280, 720)


def test_webp_is_kept_where_accepted_and_converted_where_not() -> None:
    data = encoded(800, 800, "WEBP")
    assert prepare_image(data).mime_type == "image/webp"
    converted = prepare_image(data, ("image/jpeg", "image/png"))
    assert converted.mime_type == "image/jpeg" and opened(converted.data).format == "JPEG"


def test_other_formats_become_jpeg() -> None:
    image = prepare_image(encoded(640, 480, "BMP"))
    assert image.mime_type == "image/jpeg" and image.file_name == "image.jpg"


def test_a_panorama_is_padded_to_2_5_to_1() -> None:
    image = prepare_image(encoded(3000, 600))
    assert (image.width, image.height) == (3000, 1200)
    assert opened(image.data).size == (3000, 1200)
    tall = prepare_image(encoded(400, 1600))
    assert (tall.width, tall.height) == (640, 1600)


def test_a_small_image_is_enlarged_to_300_px() -> None:
    image = prepare_image(encoded(200, 150))
    assert min(image.width, image.height) == 300
    assert opened(image.data).size == (image.width, image.height)


def test_a_tiny_image_is_refused() -> None:
    with pytest.raises(ImageError) as caught:
        prepare_image(encoded(80, 400))
    assert caught.value.reason == "image_too_small"


def test_an_image_over_10_mb_is_re_encoded_to_fit() -> None:
    noise = Image.frombytes("RGB", (2600, 2600), os.urandom(2600 * 2600 * 3))
    out = io.BytesIO()
    noise.save(out, "PNG")
    assert out.tell() > MAX_BYTES
    image = prepare_image(out.getvalue())
    assert len(image.data) <= MAX_BYTES and image.mime_type == "image/jpeg"
    assert opened(image.data).size == (image.width, image.height)


@pytest.mark.parametrize("data", [b"", b"not an image", encoded(640, 480)[:2000]])
def test_broken_images_are_refused(data: bytes) -> None:
    with pytest.raises(ImageError) as caught:
        prepare_image(data)
    assert caught.value.reason == "image_unreadable"
