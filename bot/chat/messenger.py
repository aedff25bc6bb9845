"""Telegram output of the engine: status edits and notices that never raise."""

from __future__ import annotations

import logging
import time

from telegram import Bot, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.chat.replies import edit_text, not_modified, send
from bot.chat.views.admin import alert_text
from bot.chat.views.status import adopted_text, status_keyboard, status_text, waiting_text
from bot.engine.timing import Timings
from bot.providers.catalogue import Catalogue
from storage.chats import ChatRepository
from storage.models import Task, TaskState

log = logging.getLogger(__name__)

# Progress edits (elapsed minutes) wait this long per chat; state changes show at once.
PROGRESS_INTERVAL = 10.0
# The admins hear of a backend's refused key or empty account at most this often.
ALERT_EVERY = 3600.0


class Messenger:
    """Shows a task's progress in its status message and sends notices to its chat."""

    def __init__(
        self,
        bot: Bot,
        catalogue: Catalogue,
        chats: ChatRepository,
        task_timeout: float,
        progress_interval: float = PROGRESS_INTERVAL,
        admins: frozenset[int] = frozenset(),
        timings: Timings | None = None,
    ) -> None:
        self.bot = bot
        self.timings = timings
        self.admins = admins
        # When each (backend, reason) was last told to the admins: once an hour is enough.
        self._alerted: dict[tuple[str, str], float] = {}
        self.catalogue = catalogue
        self.chats = chats
        self.task_timeout = task_timeout
        self.progress_interval = progress_interval
        self._last_edit: dict[int, float] = {}
        # What each generating task's status message shows now, to skip edits that change nothing.
        self._shown: dict[int, str] = {}

    async def show(self, task: Task) -> None:
        """Edit the task's status message to its current state."""
        await self._status(task, self._text(task), status_keyboard(task))

    def _text(self, task: Task) -> str:
        times = self.timings.of(task) if self.timings is not None else None
        told = bool(self.admins)
        return status_text(task, self.catalogue, self.task_timeout, times, owner_told=told)

    async def progress(self, task: Task) -> None:
        """Refresh a generating task's elapsed minutes when they change, at a calm rate per chat."""
        text = self._text(task)
        if self._shown.get(task.id) == text:
            return
        if self.chats.shared:  # the last edit may have been another replica's
            if not await self.chats.take_edit(task.chat_id, time.time(), self.progress_interval):
                return
        else:
            last = self._last_edit.get(task.chat_id)
            if last is not None and time.monotonic() - last < self.progress_interval:
                return
        await self._status(task, text, status_keyboard(task), taken=True)

    async def adopted(self, task: Task) -> None:
        """Tell the user that a task we could not tell had started did start after all."""
        await self.notify(task, adopted_text(task))

    async def show_waiting(self, task: Task, ahead: int) -> None:
        """Say that the task waits in the local queue for the backend's rate limit."""
        await self._status(task, waiting_text(task, self.catalogue, ahead), None)

    async def _status(
        self, task: Task, text: str, markup: InlineKeyboardMarkup | None, *, taken: bool = False
    ) -> None:
        """Edit (or send) the task's status; `taken`: a progress edit already recorded."""
        self._last_edit[task.chat_id] = time.monotonic()
        if self.chats.shared and not taken:
            await self.chats.edited(task.chat_id, time.time())
        if task.state in (TaskState.QUEUED, TaskState.RUNNING):
            self._shown[task.id] = text
        else:
            self._shown.pop(task.id, None)
        if task.status_message_id is None:
            if await self.notify(task, text, markup) is None:
                self._shown.pop(task.id, None)
            return
        if await self.chats.is_blocked(task.chat_id):
            return
        try:
            await edit_text(self.bot, task.chat_id, task.status_message_id, text, markup)
        except BadRequest as exc:
            if not_modified(exc):
                return
            log.info("task %s: status message not editable (%s); sending anew", task.id, exc)
            await self.notify(task, text, markup)
        except Forbidden:
            await self.blocked(task.chat_id)
        except TelegramError as exc:
            self._shown.pop(task.id, None)  # not shown: the next progress tries again
            log.warning("task %s: status edit failed: %s", task.id, exc)

    async def notify(
        self,
        task: Task,
        text: str,
        markup: InlineKeyboardMarkup | None = None,
        *,
        plain: bool = False,
    ) -> Message | None:
        """Send `text` (HTML, or `plain` text) as a reply to the task's photo; None if refused."""
        if await self.chats.is_blocked(task.chat_id):
            return None
        try:
            return await send(
                self.bot, task.chat_id, text, markup, reply_to=task.source_message_id, plain=plain
            )
        except Forbidden:
            await self.blocked(task.chat_id)
        except TelegramError as exc:
            log.warning("task %s: notice failed: %s", task.id, exc)
        return None

    async def alert_admins(
        self, backend: str, reason: str, detail: str | None, *, count: int = 0
    ) -> None:
        """Tell the bot's admins what a backend needs of them, once an hour per reason."""
        now = time.monotonic()
        last = self._alerted.get((backend, reason))
        if not self.admins or (last is not None and now - last < ALERT_EVERY):
            return
        self._alerted[(backend, reason)] = now
        log.warning("%s: %s (%s); telling the admins", backend, reason, detail)
        text = alert_text(self.catalogue.title(backend), reason, detail, count)
        for admin in sorted(self.admins):
            if await self.chats.is_blocked(admin):
                continue
            try:
                await send(self.bot, admin, text)
            except Forbidden:
                await self.blocked(admin)
            except TelegramError as exc:
                log.warning("could not tell admin %s: %s", admin, exc)

    async def blocked(self, chat_id: int) -> None:
        """Telegram refused us this chat: stop writing there until it writes to us again."""
        log.info("chat %s blocked the bot; holding messages to it", chat_id)
        await self.chats.block(chat_id)
