"""Make an image one every backend takes, before paying: checked, padded, enlarged or re-encoded.

No file can take much memory: sizes are read from the header before anything is decoded, a
JPEG is decoded only as large as it will be used, and what is re-encoded fits a small canvas.
"""

from __future__ import annotations

import io
import math
import threading
import warnings

from PIL import ExifTags, Image, ImageStat, PngImagePlugin, UnidentifiedImageError

from bot.core.failures import Failure
from bot.providers.base import ImageFile

_FORMATS = {
    "JPEG": ("image/jpeg", ".jpg"),
    "PNG": ("image/png", ".png"),
    "WEBP": ("image/webp", ".webp"),
}
ALL_TYPES = ("image/jpeg", "image/png", "image/webp")
# Pillow's other formats are not worth their risk (EPS, for one, runs Ghostscript). GIF is
# opened only to be told apart from a broken file.
_OPENED = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")

# What Kling (the strictest backend) takes: ≥ 300 px a side, 1:2.5 to 2.5:1, ≤ 10 MB.
MIN_SIDE = 300
MAX_RATIO = 2.5
MAX_BYTES = 10 * 1024 * 1024
# Smaller than this cannot be enlarged into anything worth a paid video.
SMALLEST = 100
# Longer than this, padding to 2.5:1 leaves a sliver of photo in a field of colour.
LONGEST = 10
# A re-encoded image has at most this many pixels: more than Kling's 1080p frames use.
CANVAS_PIXELS = 2560 * 1440
# Memory one decode may take (Pillow keeps a colour pixel in 4 bytes).
DECODE_BUDGET = 24 * 1024 * 1024

# Pillow warns of an image over Image.MAX_IMAGE_PIXELS (and refuses twice that): here it is a
# refusal either way, never a warning in the log.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
# A PNG's text chunks are unpacked as it opens (up to 64 MB by Pillow's default): keep it small.
PngImagePlugin.MAX_TEXT_CHUNK = 256 * 1024
PngImagePlugin.MAX_TEXT_MEMORY = 1024 * 1024
# Two images at a time keep a burst of big files within a bounded amount of memory.
_DECODING = threading.BoundedSemaphore(2)
# A malformed file can make Pillow's parsers fail in many ways.
_BROKEN = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
)
# What each EXIF orientation asks for, and which of those swap width and height.
_TURNS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_QUARTER_TURNS = frozenset({_TURNS[5], _TURNS[6], _TURNS[7], _TURNS[8]})
# Output rows resized at a time: the resize's intermediate image stays this small.
_BAND = 128


class ImageError(Exception):
    """The image cannot be used; `reason` names the text to show."""

    def __init__(self, reason: Failure) -> None:
        super().__init__(reason)
        self.reason = reason


def too_small(width: int, height: int) -> bool:
    """Whether an image is too small to use at all."""
    return min(width, height) < SMALLEST


def size_problem(width: int, height: int) -> Failure | None:
    """Why an image of this size cannot be used (an `ImageError` reason), or None."""
    if max(width, height) > LONGEST * max(1, min(width, height)):
        return Failure.IMAGE_SHAPE
    if too_small(width, height):
        return Failure.IMAGE_TOO_SMALL
    return None


def _open(data: bytes) -> Image.Image:
    """The image with only its header read, refused if its kind or size rules it out."""
    try:
        image = Image.open(io.BytesIO(data), formats=_OPENED)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(Failure.IMAGE_TOO_LARGE) from exc
    except _BROKEN as exc:
        raise ImageError(Failure.IMAGE_UNREADABLE) from exc
    if image.format == "GIF":
        raise ImageError(Failure.IMAGE_ANIMATED)
    if image.format in ("PNG", "WEBP") and getattr(image, "is_animated", False):
        raise ImageError(Failure.IMAGE_ANIMATED)
    problem = size_problem(*image.size)
    if problem is not None:
        raise ImageError(problem)
    return image


def _is_jpeg(image: Image.Image) -> bool:
    return image.format in ("JPEG", "MPO")


def _coefficient_bytes(image: Image.Image) -> int:
    """What libjpeg holds for a progressive JPEG: every block's coefficients, at full size."""
    layers: list[tuple[object, int, int, int]] = getattr(image, "layer", None) or []
    if not _is_jpeg(image) or not image.info.get("progressive") or not layers:
        return 0
    width, height = image.size
    most_h = max(layer[1] for layer in layers)
    most_v = max(layer[2] for layer in layers)
    blocks = sum(
        math.ceil(width * layer[1] / most_h / 8) * math.ceil(height * layer[2] / most_v / 8)
        for layer in layers
    )
    return blocks * 64 * 2


def _pixel_bytes(image: Image.Image) -> int:
    """Bytes a decoded pixel takes, with the conversion to RGB or L that follows."""
    stored = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}.get(image.mode, 4)
    if image.format == "WEBP":
        stored *= 4  # libwebp's two canvases and the frame's bytes, all kept with the image
    return stored if image.mode in ("L", "RGB") else stored + 4


def _jpeg_scale(image: Image.Image, pixels: int, fixed: int) -> int:
    """The JPEG reduction (1, 2, 4 or 8) that keeps `pixels` and fits the budget, if any does."""
    width, height = image.size
    scale = 1
    while scale < 8 and (width // (2 * scale)) * (height // (2 * scale)) >= pixels:
        scale *= 2
    while scale < 8 and fixed + (width // scale) * (height // scale) * 4 > DECODE_BUDGET:
        scale *= 2
    return scale


def _decode(image: Image.Image, pixels: int) -> Image.Transpose | None:
    """Decode the image with at least `pixels` (fewer only to stay in budget); its EXIF turn."""
    # The turn is left to the caller, to be done once the image is scaled down.
    fixed = _coefficient_bytes(image)
    if _is_jpeg(image):
        scale = _jpeg_scale(image, pixels, fixed)
        image.draft(None, (max(1, image.width // scale), max(1, image.height // scale)))
    if fixed + image.width * image.height * _pixel_bytes(image) > DECODE_BUDGET:
        raise ImageError(Failure.IMAGE_TOO_LARGE)
    try:
        image.load()
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(Failure.IMAGE_TOO_LARGE) from exc
    except _BROKEN as exc:
        raise ImageError(Failure.IMAGE_UNREADABLE) from exc
    return _TURNS.get(orientation)


def _fits(width: int, height: int) -> bool:
    """Whether Kling takes an image of this size as it is."""
    return max(width, height) <= MAX_RATIO * min(width, height) and min(width, height) >= MIN_SIDE


def _canvas(width: int, height: int) -> tuple[float, tuple[int, int]]:
    """How much to scale the image, and the padded canvas it goes on, within Kling's limits."""
    long_side, short_side = max(width, height), min(width, height)
    padded = max(short_side, long_side / MAX_RATIO)
    if padded < MIN_SIDE:
        scale = MIN_SIDE / padded
    else:
        scale = min(1.0, math.sqrt(CANVAS_PIXELS / (long_side * padded)))
    while True:
        new_long = max(1, round(long_side * scale))
        new_short = max(round(short_side * scale), math.ceil(new_long / MAX_RATIO), MIN_SIDE)
        if scale > 1 or new_long * new_short <= CANVAS_PIXELS:
            break
        scale *= 0.999  # rounding up to 2.5:1 went a little over the canvas
    size = (new_long, new_short) if width >= height else (new_short, new_long)
    return scale, size


def _resized(image: Image.Image, scale: float) -> Image.Image:
    """The image scaled by `scale`, a band of rows at a time: no full-width intermediate."""
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size:
        return image
    out = Image.new(image.mode, size)
    step = image.height / size[1]
    for top in range(0, size[1], _BAND):
        bottom = min(size[1], top + _BAND)
        box = (0.0, top * step, float(image.width), bottom * step)
        band = image.resize((size[0], bottom - top), Image.Resampling.LANCZOS, box)
        out.paste(band, (0, top))
    return out


def _padded(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The image centred on an RGB canvas of `size`."""
    if image.size == size:
        return image if image.mode == "RGB" else image.convert("RGB")
    # Pad with the picture's average colour rather than crop the subject.
    mean = ImageStat.Stat(image).mean
    fill = tuple(round(value) for value in (mean * 3)[:3])
    canvas = Image.new("RGB", size, fill)
    canvas.paste(image, ((size[0] - image.width) // 2, (size[1] - image.height) // 2))
    return canvas


def _jpeg(image: Image.Image, limit: int = MAX_BYTES) -> bytes:
    """JPEG bytes under `limit`, lowering quality, then size, as needed."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    while True:
        for quality in (92, 85, 75):
            out = io.BytesIO()
            rgb.save(out, "JPEG", quality=quality)
            if out.tell() <= limit:
                return out.getvalue()
        rgb = _resized(rgb, 0.75)


def check_image(data: bytes) -> None:
    """Refuse an image that cannot be used, decoding no more of it than it takes to tell."""
    with _DECODING:
        _decode(_open(data), 0)


def prepare_image(
    data: bytes, accepted: tuple[str, ...] = ALL_TYPES, name: str = "image"
) -> ImageFile:
    """A whole, usable image in an `accepted` type: padded, enlarged or re-encoded if needed."""
    with _DECODING:
        image = _open(data)
        width, height = image.size
        mime, suffix = _FORMATS.get(image.format or "", ("", ""))
        # What is passed on is decoded again (by the preview backend, say): a JPEG can be
        # decoded small, other formats only whole, so those are passed on up to a canvas.
        small = _is_jpeg(image) or width * height <= CANVAS_PIXELS
        if mime in accepted and len(data) <= MAX_BYTES and _fits(width, height) and small:
            if _decode(image, 0) in _QUARTER_TURNS:  # decoded only to prove the file whole
                width, height = height, width
            return ImageFile(
                data=data, mime_type=mime, file_name=name + suffix, width=width, height=height
            )
        scale, _ = _canvas(width, height)
        turn = _decode(image, math.ceil(width * scale) * math.ceil(height * scale))
        width, height = image.size
        scale, size = _canvas(*((height, width) if turn in _QUARTER_TURNS else (width, height)))
        # Each step lets go of the one before: at most two images are in memory at once.
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        image = _resized(image, scale)
        if turn is not None:
            image = image.transpose(turn)
        image = _padded(image, size)
        return ImageFile(
            data=_jpeg(image),
            mime_type="image/jpeg",
            file_name=name + ".jpg",
            width=image.width,
            height=image.height,
        )
