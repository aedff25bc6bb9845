"""Fetch a user's image from Telegram and check it before anything is paid for."""

from __future__ import annotations

import asyncio
import io

from PIL import Image, UnidentifiedImageError
from telegram import Bot
from telegram.error import TelegramError

from bot.providers.base import ImageFile

_FORMATS = {
    "JPEG": ("image/jpeg", ".jpg"),
    "PNG": ("image/png", ".png"),
    "WEBP": ("image/webp", ".webp"),
}
ALL_TYPES = ("image/jpeg", "image/png", "image/webp")


class ImageError(Exception):
    """The image cannot be used; `reason` names the text to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def prepare_image(
    data: bytes, accepted: tuple[str, ...] = ALL_TYPES, name: str = "image"
) -> ImageFile:
    """Check that `data` is a whole image; re-encode it as JPEG unless its type is `accepted`."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            width, height = image.size
            mime, suffix = _FORMATS.get(image.format or "", ("", ""))
            if mime in accepted:
                return ImageFile(
                    data=data, mime_type=mime, file_name=name + suffix, width=width, height=height
                )
            out = io.BytesIO()
            image.convert("RGB").save(out, "JPEG", quality=92)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError("image_unreadable") from exc
    return ImageFile(
        data=out.getvalue(),
        mime_type="image/jpeg",
        file_name=name + ".jpg",
        width=width,
        height=height,
    )


async def fetch_image(
    bot: Bot, file_id: str, accepted: tuple[str, ...] = ALL_TYPES, name: str = "image"
) -> ImageFile:
    """Download a Telegram file by id and check it; the file's URL never leaves this function."""
    try:
        telegram_file = await bot.get_file(file_id)
        data = bytes(await telegram_file.download_as_bytearray())
    except TelegramError as exc:
        raise ImageError("image_fetch") from exc
    return await asyncio.to_thread(prepare_image, data, accepted, name)
