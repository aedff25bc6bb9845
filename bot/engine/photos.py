"""Where the users' photos come from, and fetching one ready for its provider."""

from __future__ import annotations

import asyncio
from typing import Protocol

from bot.core.images import ALL_TYPES, prepare_image
from bot.providers.base import ImageFile


class PhotoSource(Protocol):
    """Where the users' photos come from (Telegram's files, for the bot)."""

    async def photo(self, file_id: str) -> bytes:
        """A photo's bytes by its id; ImageError(IMAGE_FETCH) when it cannot be had."""


async def fetch_image(
    source: PhotoSource, file_id: str, accepted: tuple[str, ...] = ALL_TYPES, name: str = "image"
) -> ImageFile:
    """Fetch a photo and make it usable; see `prepare_image`."""
    data = await source.photo(file_id)
    return await asyncio.to_thread(prepare_image, data, accepted, name)
