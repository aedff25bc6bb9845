"""Telegram handlers: parse the update, call a service, render the reply."""

from __future__ import annotations

import contextlib
import html
import logging
import secrets

from telegram import (
    CallbackQuery,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.callback_data import Action, DraftButton, decode
from bot.drafting import draft_problem, fit_options
from bot.engine.images import ImageError, fetch_image
from bot.providers.catalogue import ModelSpec
from bot.render import draft_keyboard, draft_text, model_menu, status_text, task_list
from bot.services import Services
from bot.texts import language_of, t
from storage.models import Draft, DraftState, GenerationOptions

log = logging.getLogger(__name__)

GETFILE_LIMIT = 20 * 1024 * 1024
STATUS_LIMIT = 10
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

Context = ContextTypes.DEFAULT_TYPE


class Handlers:
    """The bot's conversation."""

    def __init__(self, services: Services) -> None:
        self.s = services

    def register(self, application: Application) -> None:  # type: ignore[type-arg]
        """Attach every handler to `application`."""
        image_document = filters.Document.IMAGE
        application.add_handler(CommandHandler("start", self.start))
        application.add_handler(CommandHandler("help", self.help))
        application.add_handler(CommandHandler("status", self.status))
        application.add_handler(MessageHandler(filters.PHOTO | image_document, self.image))
        application.add_handler(
            MessageHandler(
                filters.Document.ALL
                | filters.Sticker.ALL
                | filters.VIDEO
                | filters.ANIMATION
                | filters.VOICE
                | filters.AUDIO
                | filters.VIDEO_NOTE,
                self.not_image,
            )
        )
        application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, self.text))
        application.add_handler(CallbackQueryHandler(self.button))
        application.add_error_handler(self.error)

    # Commands

    async def start(self, update: Update, context: Context) -> None:
        """Welcome with an example."""
        await self._reply(update, t(self._lang(update), "start"))

    async def help(self, update: Update, context: Context) -> None:
        """Explain the options."""
        await self._reply(update, t(self._lang(update), "help"))

    async def status(self, update: Update, context: Context) -> None:
        """List the user's tasks, newest first."""
        user = update.effective_user
        if user is None:
            return
        tasks = await self.s.tasks.for_user(user.id, STATUS_LIMIT)
        await self._reply(update, task_list(self._lang(update), tasks, self.s.catalogue))

    # Messages

    async def image(self, update: Update, context: Context) -> None:
        """A photo or an image file: open a draft (or ask for the prompt)."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        lang = self._lang(update)
        if message.photo:
            file_id = message.photo[-1].file_id
        else:
            assert message.document is not None
            if (message.document.file_size or 0) > GETFILE_LIMIT:
                await self._reply(update, t(lang, "file_too_big"))
                return
            try:
                await fetch_image(context.bot, message.document.file_id)
            except ImageError:
                await self._reply(update, t(lang, "not_image"))
                return
            file_id = message.document.file_id
        prompt = (message.caption or "").strip() or None
        draft = await self.s.drafts.create(
            user_id=user.id,
            chat_id=message.chat_id,
            source_message_id=message.message_id,
            image_file_id=file_id,
            prompt=prompt,
            options=await self._default_options(user.id),
            lang=lang,
        )
        if prompt is None:
            sent = await self._reply(update, t(lang, "ask_prompt"))
        else:
            sent = await self._reply(
                update, self._draft_text(draft), draft_keyboard(draft, self.s.catalogue)
            )
        if sent is not None:
            await self.s.drafts.set_message(draft.id, sent.message_id)

    async def not_image(self, update: Update, context: Context) -> None:
        """Files, stickers, videos, voice: explain what the bot needs."""
        await self._reply(update, t(self._lang(update), "not_image"))

    async def text(self, update: Update, context: Context) -> None:
        """Text fills the prompt of a photo sent without one; otherwise explain."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or not message.text:
            return
        waiting = await self.s.drafts.awaiting_prompt(message.chat_id, user.id)
        if waiting is None or not await self.s.drafts.fill_prompt(waiting.id, message.text.strip()):
            await self._reply(update, t(self._lang(update), "need_photo"))
            return
        draft = await self.s.drafts.get(waiting.id)
        assert draft is not None
        if draft.message_id is None or not await self._edit_draft(draft):
            sent = await self._reply(
                update, self._draft_text(draft), draft_keyboard(draft, self.s.catalogue)
            )
            if sent is not None:
                await self.s.drafts.set_message(draft.id, sent.message_id)

    # Buttons

    async def button(self, update: Update, context: Context) -> None:
        """Draft buttons; every query is answered, unknown and foreign ones included."""
        query = update.callback_query
        if query is None:
            return
        lang = language_of(query.from_user.language_code)
        pressed = decode(query.data)
        if pressed is None:
            await self._answer(query, t(lang, "answer.unknown"))
            return
        draft = await self.s.drafts.get(pressed.draft_id)
        if draft is None or draft.state in (DraftState.CANCELLED, DraftState.AWAITING_PROMPT):
            await self._answer(query, t(lang, "answer.gone"))
            return
        if draft.user_id != query.from_user.id:
            await self._answer(query, t(lang, "answer.not_yours"), alert=True)
            return
        if draft.state is DraftState.SUBMITTED:
            await self._answer(query, t(draft.lang, "answer.submitted"))
            return
        spec = self.s.catalogue.get(draft.options.model)
        if spec is None:
            spec = self.s.catalogue.default(self.s.settings.default_model)
            draft = await self._set_options(draft, fit_options(spec, draft.options)) or draft
        if pressed.action is Action.GENERATE:
            await self._generate(query, draft, spec)
        elif pressed.action is Action.CANCEL:
            await self._cancel(query, draft)
        elif pressed.action is Action.MODEL_MENU:
            await self._answer(query)
            await self._edit_markup(draft, model_menu(draft, self.s.catalogue))
        elif pressed.action is Action.BACK:
            await self._answer(query)
            await self._edit_markup(draft, draft_keyboard(draft, self.s.catalogue))
        else:
            await self._change_option(query, draft, spec, pressed)

    async def _change_option(
        self, query: CallbackQuery, draft: Draft, spec: ModelSpec, pressed: DraftButton
    ) -> None:
        options = draft.options
        changed: GenerationOptions | None = None
        if pressed.action is Action.DURATION and pressed.argument is not None:
            seconds = int(pressed.argument)
            if seconds in spec.durations:
                changed = options.model_copy(update={"duration": seconds})
        elif pressed.action is Action.SOUND and spec.sound:
            changed = options.model_copy(update={"sound": not options.sound})
        elif pressed.action is Action.MODEL and pressed.argument is not None:
            chosen = self.s.catalogue.by_code(pressed.argument)
            if chosen is not None:
                changed = fit_options(chosen, options)
        if changed is None:
            await self._answer(query, t(draft.lang, "answer.unknown"))
            return
        updated = await self._set_options(draft, changed)
        if updated is None:
            await self._answer(query, t(draft.lang, "answer.submitted"))
            return
        await self._answer(query, t(draft.lang, "answer.updated"))
        await self._edit_draft(updated)

    async def _generate(self, query: CallbackQuery, draft: Draft, spec: ModelSpec) -> None:
        problem = draft_problem(draft, spec)
        if problem is not None:
            await self._answer(query, problem[:200], alert=True)
            return
        task = await self.s.tasks.claim_draft(draft.id, secrets.token_urlsafe(24))
        if task is None:
            await self._answer(query, t(draft.lang, "answer.submitted"))
            return
        await self._answer(query, t(draft.lang, "answer.starting"))
        await self.s.users.save_options(draft.user_id, draft.options)
        if task.status_message_id is not None:
            await self._edit(
                draft, status_text(task, self.s.catalogue, self.s.settings.task_timeout), None
            )
        self.s.submitter.start(task)

    async def _cancel(self, query: CallbackQuery, draft: Draft) -> None:
        if not await self.s.drafts.cancel(draft.id):
            await self._answer(query, t(draft.lang, "answer.submitted"))
            return
        await self._answer(query, t(draft.lang, "answer.cancelled"))
        await self._edit(draft, t(draft.lang, "draft.cancelled"), None)

    # Helpers

    def _lang(self, update: Update) -> str:
        user = update.effective_user
        return language_of(user.language_code if user else None)

    async def _default_options(self, user_id: int) -> GenerationOptions:
        catalogue = self.s.catalogue
        saved = (await self.s.users.get(user_id)).options
        if saved is not None and catalogue.get(saved.model) is not None:
            spec = catalogue.default(saved.model)
            return fit_options(spec, saved)
        spec = catalogue.default(self.s.settings.default_model)
        return fit_options(spec, GenerationOptions(model=spec.id))

    def _draft_text(self, draft: Draft) -> str:
        text = draft_text(draft, self.s.catalogue)
        spec = self.s.catalogue.get(draft.options.model)
        problem = draft_problem(draft, spec) if spec else None
        return f"{text}\n\n⚠️ {html.escape(problem)}" if problem else text

    async def _set_options(self, draft: Draft, options: GenerationOptions) -> Draft | None:
        if not await self.s.drafts.set_options(draft.id, options):
            return None
        return await self.s.drafts.get(draft.id)

    async def _edit_draft(self, draft: Draft) -> bool:
        return await self._edit(
            draft, self._draft_text(draft), draft_keyboard(draft, self.s.catalogue)
        )

    async def _edit(self, draft: Draft, text: str, markup: InlineKeyboardMarkup | None) -> bool:
        if draft.message_id is None:
            return False
        try:
            await self.s.messenger.bot.edit_message_text(
                text,
                chat_id=draft.chat_id,
                message_id=draft.message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                link_preview_options=NO_PREVIEW,
            )
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                log.info("draft %s: edit failed: %s", draft.id, exc.message)
                return False
        except TelegramError as exc:
            log.warning("draft %s: edit failed: %s", draft.id, exc)
            return False
        return True

    async def _edit_markup(self, draft: Draft, markup: InlineKeyboardMarkup) -> None:
        if draft.message_id is None:
            return
        try:
            await self.s.messenger.bot.edit_message_reply_markup(
                chat_id=draft.chat_id, message_id=draft.message_id, reply_markup=markup
            )
        except TelegramError as exc:
            log.info("draft %s: keyboard edit failed: %s", draft.id, exc)

    async def _answer(
        self, query: CallbackQuery, text: str | None = None, alert: bool = False
    ) -> None:
        try:
            await query.answer(text, show_alert=alert)
        except BadRequest as exc:
            # "query is too old": the user waited too long; nothing to do.
            log.info("callback answer failed: %s", exc.message)

    async def _reply(
        self, update: Update, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> Message | None:
        message = update.effective_message
        if message is None:
            return None
        return await message.reply_text(
            text,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            link_preview_options=NO_PREVIEW,
            reply_parameters=ReplyParameters(message.message_id, allow_sending_without_reply=True),
        )

    async def error(self, update: object, context: Context) -> None:
        """Log the failure and tell the user something went wrong."""
        log.error("update failed", exc_info=context.error)
        if not isinstance(update, Update):
            return
        if update.callback_query is not None:
            lang = language_of(update.callback_query.from_user.language_code)
            await self._answer(update.callback_query, t(lang, "error.generic"))
            return
        if update.effective_message is not None:
            with contextlib.suppress(TelegramError):
                await self._reply(update, t(self._lang(update), "error.generic"))
