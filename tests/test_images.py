"""Images are made acceptable to every backend before anything is paid."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from bot.core.images import (
    CANVAS_PIXELS,
    LONGEST,
    MAX_BYTES,
    MAX_RATIO,
    MIN_SIDE,
    SMALLEST,
    ImageError,
    _resized,
    check_image,
    prepare_image,
)
from tests.test_image_memory import black_png, grey_jpeg


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
    noise = Image.frombytes("RGB", (2000, 2000), os.urandom(2000 * 2000 * 3))
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


def test_the_smallest_side_limit_is_the_one_in_the_code() -> None:
    with pytest.raises(ImageError) as caught:
        prepare_image(encoded(SMALLEST - 1, 400))
    assert caught.value.reason == "image_too_small"
    image = prepare_image(encoded(SMALLEST, 200))
    assert min(image.width, image.height) == MIN_SIDE


@pytest.mark.parametrize(
    "data",
    [
        encoded(20000, 120, "PNG"),
        encoded(1, 50000, "PNG"),
        grey_jpeg(LONGEST * 400 + 8, 400),
    ],
)
def test_absurd_shapes_are_refused_before_decoding(data: bytes) -> None:
    for check in (check_image, prepare_image):
        with pytest.raises(ImageError) as caught:
            check(data)
        assert caught.value.reason == "image_shape"


def test_a_long_panorama_within_the_limit_is_padded() -> None:
    image = prepare_image(encoded(LONGEST * 300, 300))
    assert max(image.width, image.height) <= MAX_RATIO * min(image.width, image.height)
    assert min(image.width, image.height) >= MIN_SIDE


@pytest.mark.parametrize(
    "data",
    [
        black_png(30000, 30000),  # over twice Image.MAX_IMAGE_PIXELS: Pillow raises
        black_png(10000, 10000),  # just over it: Pillow only warns, which must not get out
        black_png(8000, 8000),  # under Pillow's limit, but 64 MB decoded
        grey_jpeg(10000, 8000, progressive=True),  # every coefficient held: 240 MB
    ],
    ids=["pillow-error", "pillow-warning", "png", "progressive-jpeg"],
)
def test_decompression_bombs_are_refused(data: bytes) -> None:
    for check in (check_image, prepare_image):
        with pytest.raises(ImageError) as caught:
            check(data)
        assert caught.value.reason == "image_too_large"


def test_text_chunks_cannot_unpack_into_megabytes() -> None:
    with pytest.raises(ImageError) as caught:
        prepare_image(black_png(640, 480, text_chunks=3))
    assert caught.value.reason == "image_unreadable"


def test_a_huge_jpeg_is_decoded_small_and_fits_every_limit() -> None:
    wide = prepare_image(grey_jpeg(20000, 4000))
    assert wide.width * wide.height <= CANVAS_PIXELS
    assert wide.width <= MAX_RATIO * wide.height and wide.height >= MIN_SIDE
    assert opened(wide.data).size == (wide.width, wide.height)
    data = grey_jpeg(10000, 8000)
    check_image(data)
    assert prepare_image(data).data == data  # fits Kling as it is: passed through untouched


def test_a_huge_jpeg_is_re_encoded_within_the_canvas_when_not_taken() -> None:
    image = prepare_image(grey_jpeg(7999, 7999), ("image/png",))
    assert image.mime_type == "image/jpeg" and image.width * image.height <= CANVAS_PIXELS
    assert image.width == image.height >= 1000


def test_gifs_and_animations_are_refused() -> None:
    frames = [Image.new("RGB", (400, 400), color) for color in ("red", "blue")]
    gif, apng = io.BytesIO(), io.BytesIO()
    frames[0].save(gif, "GIF")
    frames[0].save(apng, "PNG", save_all=True, append_images=frames[1:])
    for data in (gif.getvalue(), apng.getvalue()):
        with pytest.raises(ImageError) as caught:
            check_image(data)
        assert caught.value.reason == "image_animated"


def test_exif_orientation_is_honoured() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter: the upright image is 720 x 1280
    out = io.BytesIO()
    Image.new("RGB", (1280, 720), "teal").save(out, "JPEG", exif=exif)
    kept = prepare_image(out.getvalue())
    assert kept.data == out.getvalue() and (kept.width, kept.height) == (720, 1280)
    converted = prepare_image(out.getvalue(), ("image/png",))
    assert (converted.width, converted.height) == (720, 1280)
    assert opened(converted.data).size == (720, 1280)
    out = io.BytesIO()
    Image.new("RGB", (3000, 600), "teal").save(out, "JPEG", exif=exif)
    padded = prepare_image(out.getvalue())
    assert (padded.width, padded.height) == (1200, 3000)


def test_resizing_in_bands_matches_resizing_at_once() -> None:
    gradient = Image.linear_gradient("L").resize((700, 900))
    radial = Image.radial_gradient("L").resize((700, 900))
    source = Image.merge("RGB", [gradient, gradient.rotate(90), radial])
    for scale in (0.31, 0.77, 1.9):
        banded = _resized(source, scale)
        whole = source.resize(banded.size, Image.Resampling.LANCZOS)
        assert banded.size == (round(700 * scale), round(900 * scale))
        pairs = zip(banded.tobytes(), whole.tobytes(), strict=True)
        assert max(abs(a - b) for a, b in pairs) <= 2  # no seams between the bands


def test_only_a_jpeg_is_passed_on_bigger_than_a_canvas() -> None:
    big = prepare_image(encoded(2400, 2400, "PNG"))  # decoded again whole by whoever takes it
    assert big.mime_type == "image/jpeg" and (big.width, big.height) == (1920, 1920)
    assert prepare_image(encoded(2400, 1500, "PNG")).mime_type == "image/png"  # 3.6 MP
    photo = encoded(2400, 2400)
    assert prepare_image(photo).data == photo
