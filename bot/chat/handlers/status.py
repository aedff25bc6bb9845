"""The user's tasks: /status pages, and the buttons under status messages, videos and pages."""

from __future__ import annotations

import asyncio
import time

from telegram import CallbackQuery, InlineKeyboardMarkup, Update

from bot.chat.callback_data import TaskAction, TaskButton, decode_page, decode_task
from bot.chat.replies import Context, answer, edit, reply
from bot.chat.services import Services
from bot.chat.texts import t
from bot.chat.views.refusals import claim_refusal
from bot.chat.views.task_list import PAGE_SIZE, pages, status_page
from bot.drafts.service import Refused
from storage import Refusal
from storage.models import Draft, DraftState, Task

# How long a double tap's second tap waits for the first one's draft to reach the chat.
SHOWN_WITHIN = 3.0


class Status:
    """/status, ◀️ ▶️, and Retry, Again, New prompt and Refresh on a task."""

    def __init__(self, services: Services) -> None:
        self.s = services

    async def status(self, update: Update, context: Context) -> None:
        """The user's tasks, newest first, a page at a time."""
        user = update.effective_user
        if user is None:
            return
        text, markup = await self._page(user.id, await self.s.language(user), 0)
        await reply(update, text, markup)

    async def _page(
        self, user_id: int, lang: str, page: int
    ) -> tuple[str, InlineKeyboardMarkup | None]:
        total = await self.s.tasks.count_for_user(user_id)
        page = min(page, pages(total) - 1)
        tasks = await self.s.tasks.for_user(user_id, PAGE_SIZE, page * PAGE_SIZE)
        return status_page(lang, tasks, self.s.catalogue, page, total, self.s.timings.of)

    async def page_button(self, update: Update, context: Context) -> None:
        """◀️ ▶️ of /status."""
        query = update.callback_query
        if query is None or query.message is None:
            return
        lang = await self.s.language(query.from_user)
        page = decode_page(query.data)
        if page is None:
            await answer(query, t(lang, "answer.unknown"))
            return
        await answer(query)
        text, markup = await self._page(query.from_user.id, lang, page)
        await edit(
            self.s.messenger.bot, query.message.chat.id, query.message.message_id, text, markup
        )

    async def task_button(self, update: Update, context: Context) -> None:
        """Retry, again, new prompt and refresh under status messages, videos and /status."""
        query = update.callback_query
        if query is None:
            return
        lang = await self.s.language(query.from_user)
        pressed = decode_task(query.data)
        task = await self.s.tasks.get(pressed.task_id) if pressed else None
        if pressed is None or task is None:
            await answer(query, t(lang, "answer.unknown"))
            return
        if task.user_id != query.from_user.id:
            await answer(query, t(lang, "answer.not_yours"), alert=True)
            return
        if pressed.action is TaskAction.RETRY:
            await self._retry(query, task)
        elif pressed.action is TaskAction.REFRESH:
            await self._refresh(query, task, lang)
        else:
            await self._redraft(query, task, pressed, lang)

    async def _retry(self, query: CallbackQuery, task: Task) -> None:
        async def announce(retry: Task) -> None:
            await answer(query, t(task.lang, "answer.retrying"))
            # The old status message now shows the new task; the old task keeps its row.
            await self.s.messenger.show(retry)

        outcome = await self.s.drafts.retry(task, announce)
        if isinstance(outcome, Refused):
            if outcome.refusal is Refusal.ALREADY:
                await answer(query, t(task.lang, "answer.retried"))
            else:
                text = claim_refusal(task.lang, outcome.refusal, self.s.settings)
                await answer(query, text, alert=True)

    async def _refresh(self, query: CallbackQuery, task: Task, lang: str) -> None:
        """Check the task now, and show the /status page it is on as it is now."""
        if not task.state.finished:
            await self.s.tracker.wake(task)
        await answer(query, t(lang, "answer.refreshed"))
        message = query.message
        if message is None:
            return
        newer = await self.s.tasks.count_newer(task.user_id, task.id)
        text, markup = await self._page(task.user_id, lang, newer // PAGE_SIZE)
        await edit(self.s.messenger.bot, message.chat.id, message.message_id, text, markup)

    async def _redraft(
        self, query: CallbackQuery, task: Task, pressed: TaskButton, lang: str
    ) -> None:
        """A new draft from a task: the same prompt and options, or the photo with a new prompt."""
        keep = pressed.action is TaskAction.AGAIN
        made = await self.s.drafts.redraft(task.id, keep_prompt=keep, lang=lang)
        if made is None:
            await answer(query, t(lang, "answer.unknown"))
            return
        draft, new = made
        await answer(query, t(lang, "answer.new_draft"))
        # A double tap's second tap leaves the draft to the first, unless that one's message
        # never came (Telegram refused it).
        if new or await self._never_shown(draft):
            await self.s.draft_messages.show_new(draft)

    async def _never_shown(self, draft: Draft) -> bool:
        """Whether a draft still open has no message after a moment's wait for one."""
        deadline = time.monotonic() + SHOWN_WITHIN
        open_ = (DraftState.OPEN, DraftState.AWAITING_PROMPT)
        while True:
            current = await self.s.drafts.get(draft.id)
            if current is None or current.message_id is not None or current.state not in open_:
                return False
            if time.monotonic() > deadline:
                return True
            await asyncio.sleep(0.2)
