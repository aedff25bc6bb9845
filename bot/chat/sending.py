"""Videos and link notices into the user's chat: the Telegram side of a delivery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from telegram.constants import ChatAction
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.background import alongside
from bot.chat.messenger import Messenger
from bot.chat.upload import VideoUploader
from bot.chat.views.video import link_texts, video_caption, video_keyboard
from bot.engine.reporting import LinkReason, Sent
from storage.models import Task

log = logging.getLogger(__name__)


class TelegramRecipient:
    """Sends a task's video (or its link) to the chat the photo came from."""

    def __init__(self, messenger: Messenger, uploader: VideoUploader) -> None:
        self._messenger = messenger
        self._uploader = uploader

    async def turned_away(self, task: Task) -> bool:
        """Whether the chat blocked the bot (nothing is sent there until it writes again)."""
        return await self._messenger.chats.is_blocked(task.chat_id)

    async def ready(self, task: Task) -> bool:
        """Say "sending a video…" in the chat; False if the chat turned the bot away."""
        try:
            # The chat action is also a cheap probe: no upload to a chat that blocked us.
            await self._messenger.bot.send_chat_action(task.chat_id, ChatAction.UPLOAD_VIDEO)
        except Forbidden:
            await self._messenger.blocked(task.chat_id)
            return False
        except TelegramError as exc:
            log.info("task %s: chat action failed: %s", task.id, exc)
        return True

    async def send_video(self, task: Task, path: Path) -> Sent:
        """Upload the video as a reply to the photo."""
        try:
            # Telegram shows "sending a video…" in the chat for as long as the upload takes.
            async with alongside(self._upload_action(task.chat_id)):
                await self._uploader.send_video(
                    task.chat_id,
                    path,
                    caption=video_caption(task, self._messenger.catalogue),
                    reply_to=task.source_message_id,
                    reply_markup=video_keyboard(task),
                    filename=f"kling-{task.id}.mp4",
                )
        except Forbidden:
            await self._messenger.blocked(task.chat_id)
            return Sent.TURNED_AWAY
        except (BadRequest, TelegramError) as exc:
            log.warning("task %s: sendVideo failed (%s)", task.id, exc)
            return Sent.REFUSED
        return Sent.SENT

    async def send_link(
        self, task: Task, reason: LinkReason, url: str, size_mb: int, brief: bool = False
    ) -> bool:
        """Send the video's link; False if the user surely did not get it."""
        text, plain = link_texts(task, reason, url, size_mb, brief)
        return await self._notice(task, text, plain)

    async def _notice(self, task: Task, text: str, plain: str) -> bool:
        """Send a notice, in plain text if its HTML is refused; False if neither arrived."""
        for body, as_plain in ((text, False), (plain, True)):
            if await self._messenger.notify(task, body, plain=as_plain) is not None:
                return True
            if await self.turned_away(task):
                return False  # the user turned the bot away: sent when they write again
        log.warning("task %s: its notice was refused twice; the task stays undelivered", task.id)
        return False

    async def _upload_action(self, chat_id: int) -> None:
        # Telegram shows a chat action for five seconds; renew it until cancelled.
        with contextlib.suppress(TelegramError):
            while True:
                await asyncio.sleep(4.5)
                await self._messenger.bot.send_chat_action(chat_id, ChatAction.UPLOAD_VIDEO)
