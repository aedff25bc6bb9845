"""The users' photos, fetched from Telegram by file id."""

from __future__ import annotations

import asyncio

from telegram import Bot
from telegram.error import NetworkError, TelegramError

from bot.core.failures import Failure
from bot.core.images import ImageError, check_image

FETCH_ATTEMPTS = 3


class TelegramPhotos:
    """Downloads Telegram files; their URLs (with the token) never leave this class."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def photo(self, file_id: str) -> bytes:
        """A Telegram file's bytes, by id; network trouble is tried again twice."""
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            try:
                telegram_file = await self._bot.get_file(file_id)
                return bytes(await telegram_file.download_as_bytearray())
            except NetworkError as exc:  # timeouts included: worth another try
                if attempt == FETCH_ATTEMPTS:
                    raise ImageError(Failure.IMAGE_FETCH) from exc
                await asyncio.sleep(attempt)
            except TelegramError as exc:
                raise ImageError(Failure.IMAGE_FETCH) from exc
        raise ImageError(Failure.IMAGE_FETCH)

    async def check(self, file_id: str) -> None:
        """Download a file and refuse it if it is no image the bot can use."""
        data = await self.photo(file_id)
        await asyncio.to_thread(check_image, data)
