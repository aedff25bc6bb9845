"""Telegram output of the engine: status edits and notices that never raise."""

from __future__ import annotations

import logging

from telegram import Bot, LinkPreviewOptions, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.providers.catalogue import Catalogue
from bot.render import status_text
from storage.models import Task

log = logging.getLogger(__name__)

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


class Messenger:
    """Shows a task's progress in its status message and sends notices to its chat."""

    def __init__(self, bot: Bot, catalogue: Catalogue, task_timeout: float) -> None:
        self.bot = bot
        self.catalogue = catalogue
        self.task_timeout = task_timeout

    async def show(self, task: Task) -> None:
        """Edit the task's status message to its current state."""
        text = status_text(task, self.catalogue, self.task_timeout)
        if task.status_message_id is None:
            await self.notify(task, text)
            return
        try:
            await self.bot.edit_message_text(
                text,
                chat_id=task.chat_id,
                message_id=task.status_message_id,
                parse_mode=ParseMode.HTML,
                link_preview_options=NO_PREVIEW,
            )
        except BadRequest as exc:
            if "not modified" in exc.message.lower():
                return
            log.info("task %s: status message not editable (%s); sending anew", task.id, exc)
            await self.notify(task, text)
        except Forbidden:
            log.info("task %s: chat %s blocked the bot", task.id, task.chat_id)
        except TelegramError as exc:
            log.warning("task %s: status edit failed: %s", task.id, exc)

    async def notify(self, task: Task, text: str) -> Message | None:
        """Send `text` as a reply to the task's photo; None if Telegram refused."""
        try:
            return await self.bot.send_message(
                task.chat_id,
                text,
                parse_mode=ParseMode.HTML,
                link_preview_options=NO_PREVIEW,
                reply_parameters=ReplyParameters(
                    task.source_message_id, allow_sending_without_reply=True
                ),
            )
        except Forbidden:
            log.info("task %s: chat %s blocked the bot", task.id, task.chat_id)
        except TelegramError as exc:
            log.warning("task %s: notice failed: %s", task.id, exc)
        return None
