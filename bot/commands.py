"""Commands and the buttons under status messages, /status pages and /settings."""

from __future__ import annotations

import asyncio
import logging
import secrets

from telegram import BotCommand, BotCommandScopeChat, CallbackQuery, InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.callback_data import (
    SettingsAction,
    SettingsButton,
    TaskAction,
    TaskButton,
    decode_page,
    decode_settings,
    decode_task,
)
from bot.drafting import fit_options, limits, next_mode, refusal_text
from bot.handlers import Handlers
from bot.providers.errors import ProviderError
from bot.replies import Context, answer, edit, edit_markup, reply
from bot.screens import (
    PAGE_SIZE,
    balance_text,
    pages,
    settings_models,
    settings_screen,
    stats_text,
    status_page,
)
from bot.services import Services
from bot.texts import LANGUAGES, t
from storage import Refusal
from storage.models import GenerationOptions, Task, TaskState

log = logging.getLogger(__name__)

COMMANDS = ("start", "help", "status", "settings", "cancel")
ADMIN_COMMANDS = ("balance", "stats")


async def set_commands(application: Application, admins: frozenset[int]) -> None:  # type: ignore[type-arg]
    """The command menu in each language; admins also see theirs."""
    bot = application.bot
    try:
        for lang in LANGUAGES:
            commands = [BotCommand(name, t(lang, f"commands.{name}")) for name in COMMANDS]
            await bot.set_my_commands(commands, language_code=None if lang == "en" else lang)
        for admin in admins:
            names = COMMANDS + ADMIN_COMMANDS
            commands = [BotCommand(name, t("en", f"commands.{name}")) for name in names]
            await bot.set_my_commands(commands, scope=BotCommandScopeChat(admin))
    except TelegramError as exc:
        log.warning("could not set the command menu: %s", exc)


class Commands:
    """/start, /help, /status, /settings, /cancel, /balance, /stats and their buttons."""

    def __init__(self, services: Services, drafts: Handlers) -> None:
        self.s = services
        self.drafts = drafts

    def register(self, application: Application) -> None:  # type: ignore[type-arg]
        """Attach the commands and the non-draft buttons (and a catch-all for the rest)."""
        for name in COMMANDS + ADMIN_COMMANDS:
            application.add_handler(CommandHandler(name, getattr(self, name)))
        application.add_handler(CallbackQueryHandler(self.task_button, pattern=r"^t:"))
        application.add_handler(CallbackQueryHandler(self.page_button, pattern=r"^l:"))
        application.add_handler(CallbackQueryHandler(self.settings_button, pattern=r"^s:"))
        application.add_handler(CallbackQueryHandler(self.unknown_button))
        # In groups a command may be meant for another bot: only private chats are answered.
        unknown = filters.COMMAND & filters.ChatType.PRIVATE
        application.add_handler(MessageHandler(unknown, self.unknown_command))

    # Commands

    async def start(self, update: Update, context: Context) -> None:
        """Welcome with an example."""
        await reply(update, t(await self.s.language(update.effective_user), "start"))

    async def help(self, update: Update, context: Context) -> None:
        """Explain the options."""
        await reply(update, t(await self.s.language(update.effective_user), "help"))

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

    async def cancel(self, update: Update, context: Context) -> None:
        """Drop the user's open draft in this chat."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        lang = await self.s.language(user)
        draft = await self.s.drafts.latest_open(message.chat_id, user.id)
        if draft is None or not await self.s.drafts.cancel(draft.id):
            await reply(update, t(lang, "cancel.none"))
            return
        if draft.message_id is not None:
            bot = self.s.messenger.bot
            await edit(bot, draft.chat_id, draft.message_id, t(draft.lang, "draft.cancelled"), None)
        await reply(update, t(lang, "cancel.done"))

    async def settings(self, update: Update, context: Context) -> None:
        """The user's defaults for new drafts, and their language."""
        user = update.effective_user
        if user is None:
            return
        lang = await self.s.language(user)
        options = await self.drafts.default_options(user.id)
        await reply(update, *settings_screen(lang, options, self.s.catalogue))

    async def balance(self, update: Update, context: Context) -> None:
        """Admins: what is left at each backend."""
        lang = await self._admin_language(update)
        if lang is None:
            return
        names = list(self.s.providers)
        results = await asyncio.gather(
            *(provider.balance() for provider in self.s.providers.values()),
            return_exceptions=True,
        )
        lines: list[tuple[str, str | None, str | None]] = []
        for name, result in zip(names, results, strict=True):
            label = self.s.catalogue.title(name)
            if isinstance(result, str):
                lines.append((label, result, None))
            elif isinstance(result, ProviderError):
                lines.append((label, None, f"{result.reason}: {result.message}"))
            elif isinstance(result, NotImplementedError):
                lines.append((label, None, "no balance endpoint"))
            else:
                lines.append((label, None, type(result).__name__))
        await reply(update, balance_text(lang, lines))

    async def stats(self, update: Update, context: Context) -> None:
        """Admins: tasks by state, model and day, and the latest failures."""
        lang = await self._admin_language(update)
        if lang is None:
            return
        stats = await self.s.tasks.stats()
        # Being sent now, or left undelivered because Telegram refused even a link.
        sending = await self.s.tasks.in_states(TaskState.DELIVERING)
        timeout = self.s.settings.task_timeout
        await reply(update, stats_text(lang, stats, self.s.catalogue, timeout, sending[-10:]))

    async def _admin_language(self, update: Update) -> str | None:
        user = update.effective_user
        lang = await self.s.language(user)
        if user is None or user.id not in self.s.settings.admin_user_ids:
            await reply(update, t(lang, "admin.only"))
            return None
        return lang

    # Buttons

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
        settings = self.s.settings
        retry = await self.s.tasks.retry(
            task.id, secrets.token_urlsafe(24), task.status_message_id, limits(settings)
        )
        if isinstance(retry, Refusal):
            if retry is Refusal.ALREADY:
                await answer(query, t(task.lang, "answer.retried"))
            else:
                await answer(query, refusal_text(task.lang, retry, settings), alert=True)
            return
        await answer(query, t(task.lang, "answer.retrying"))
        # The old status message now shows the new task; the old task keeps its row.
        await self.s.messenger.show(retry)
        self.s.submitter.start(retry)

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
        draft = await self.s.drafts.from_task(task.id, keep_prompt=keep, lang=lang)
        if draft is None:
            await answer(query, t(lang, "answer.unknown"))
            return
        await answer(query, t(lang, "answer.new_draft"))
        await self.drafts.show_new(draft)

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

    async def settings_button(self, update: Update, context: Context) -> None:
        """The /settings buttons: each change is saved at once."""
        query = update.callback_query
        if query is None or query.message is None:
            return
        user = query.from_user
        pressed = decode_settings(query.data)
        lang = await self.s.language(user)
        if pressed is None:
            await answer(query, t(lang, "answer.unknown"))
            return
        options = await self.drafts.default_options(user.id)
        chat_id, message_id = query.message.chat.id, query.message.message_id
        bot = self.s.messenger.bot
        if pressed.action in (SettingsAction.MODEL_MENU, SettingsAction.MODEL_GROUP):
            await answer(query)
            menu = settings_models(lang, options.model, self.s.catalogue, pressed.argument)
            await edit_markup(bot, chat_id, message_id, menu)
            return
        if pressed.action is SettingsAction.LANGUAGE:
            if pressed.argument not in LANGUAGES:
                await answer(query, t(lang, "answer.unknown"))
                return
            lang = pressed.argument
            await self.s.users.save_language(user.id, lang)
        elif pressed.action is not SettingsAction.BACK:
            changed = self._changed(options, pressed)
            if changed is None:
                await answer(query, t(lang, "answer.unknown"))
                return
            options = changed
            await self.s.users.save_options(user.id, options)
        await answer(query, t(lang, "answer.updated"))
        await edit(bot, chat_id, message_id, *settings_screen(lang, options, self.s.catalogue))

    def _changed(
        self, options: GenerationOptions, pressed: SettingsButton
    ) -> GenerationOptions | None:
        spec = self.s.catalogue.get(options.model)
        if spec is None:
            return None
        if pressed.action is SettingsAction.DURATION and pressed.argument is not None:
            seconds = int(pressed.argument)
            return (
                options.model_copy(update={"duration": seconds})
                if seconds in spec.durations
                else None
            )
        if pressed.action is SettingsAction.SOUND and spec.sound:
            return options.model_copy(update={"sound": not options.sound})
        if pressed.action is SettingsAction.MODE and (mode := next_mode(spec.modes, options.mode)):
            return options.model_copy(update={"mode": mode})
        if pressed.action is SettingsAction.MODEL and pressed.argument is not None:
            chosen = self.s.catalogue.by_code(pressed.argument)
            return fit_options(chosen, options) if chosen else None
        return None

    async def unknown_button(self, update: Update, context: Context) -> None:
        """Buttons that are none of ours (or from an old version): answered all the same."""
        query = update.callback_query
        if query is not None:
            await answer(query, t(await self.s.language(query.from_user), "answer.unknown"))

    async def unknown_command(self, update: Update, context: Context) -> None:
        """A command the bot does not have: point to /help."""
        await reply(update, t(await self.s.language(update.effective_user), "unknown_command"))
