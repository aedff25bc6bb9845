"""Fetch a user's image from Telegram and make it one every backend takes, before paying."""

from __future__ import annotations

import asyncio
import io

from PIL import Image, ImageOps, UnidentifiedImageError
from telegram import Bot
from telegram.error import NetworkError, TelegramError

from bot.providers.base import ImageFile

_FORMATS = {
    "JPEG": ("image/jpeg", ".jpg"),
    "PNG": ("image/png", ".png"),
    "WEBP": ("image/webp", ".webp"),
}
ALL_TYPES = ("image/jpeg", "image/png", "image/webp")

# What Kling (the strictest backend) takes: ≥ 300 px a side, 1:2.5 to 2.5:1, ≤ 10 MB.
MIN_SIDE = 300
MAX_RATIO = 2.5
MAX_BYTES = 10 * 1024 * 1024
# Smaller than this cannot be enlarged into anything worth a paid video.
SMALLEST = 100
FETCH_ATTEMPTS = 3


class ImageError(Exception):
    """The image cannot be used; `reason` names the text to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def too_small(width: int, height: int) -> bool:
    """Whether an image is too small to use at all."""
    return min(width, height) < SMALLEST


def _fitted(image: Image.Image) -> Image.Image | None:
    """The image padded and enlarged to Kling's limits, or None if it fits already."""
    width, height = image.size
    changed = False
    if max(width, height) > MAX_RATIO * min(width, height):
        # Pad the short side with the picture's average colour rather than crop the subject.
        if width > height:
            size = (width, round(width / MAX_RATIO))
        else:
            size = (round(height / MAX_RATIO), height)
        average = image.convert("RGB").resize((1, 1)).getpixel((0, 0))
        fill = tuple(average) if isinstance(average, tuple) else (0, 0, 0)
        canvas = Image.new("RGB", size, fill)
        canvas.paste(image.convert("RGB"), ((size[0] - width) // 2, (size[1] - height) // 2))
        image, (width, height), changed = canvas, size, True
    if min(width, height) < MIN_SIDE:
        scale = MIN_SIDE / min(width, height)
        image = image.resize(
            (round(width * scale), round(height * scale)), Image.Resampling.LANCZOS
        )
        changed = True
    return image if changed else None


def _jpeg(image: Image.Image, limit: int = MAX_BYTES) -> bytes:
    """JPEG bytes under `limit`, lowering quality, then size, as needed."""
    rgb = image.convert("RGB")
    while True:
        for quality in (92, 85, 75):
            out = io.BytesIO()
            rgb.save(out, "JPEG", quality=quality, optimize=True)
            if out.tell() <= limit:
                return out.getvalue()
        width, height = rgb.size
        rgb = rgb.resize((int(width * 0.75), int(height * 0.75)), Image.Resampling.LANCZOS)


def prepare_image(
    data: bytes, accepted: tuple[str, ...] = ALL_TYPES, name: str = "image"
) -> ImageFile:
    """A whole, usable image in an `accepted` type: padded, enlarged or re-encoded if needed."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            mime, suffix = _FORMATS.get(opened.format or "", ("", ""))
            image = ImageOps.exif_transpose(opened) or opened
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError("image_unreadable") from exc
    if too_small(*image.size):
        raise ImageError("image_too_small")
    fitted = _fitted(image)
    if fitted is None and mime in accepted and len(data) <= MAX_BYTES:
        width, height = image.size
        return ImageFile(
            data=data, mime_type=mime, file_name=name + suffix, width=width, height=height
        )
    final = fitted or image
    return ImageFile(
        data=_jpeg(final),
        mime_type="image/jpeg",
        file_name=name + ".jpg",
        width=final.width,
        height=final.height,
    )


async def fetch_image(
    bot: Bot, file_id: str, accepted: tuple[str, ...] = ALL_TYPES, name: str = "image"
) -> ImageFile:
    """Download a Telegram file by id and check it; the file's URL never leaves this function."""
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        try:
            telegram_file = await bot.get_file(file_id)
            data = bytes(await telegram_file.download_as_bytearray())
            break
        except NetworkError as exc:  # timeouts included: worth another try
            if attempt == FETCH_ATTEMPTS:
                raise ImageError("image_fetch") from exc
            await asyncio.sleep(attempt)
        except TelegramError as exc:
            raise ImageError("image_fetch") from exc
    return await asyncio.to_thread(prepare_image, data, accepted, name)
