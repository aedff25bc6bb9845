"""Telegram handlers: parse the update, call a service, render the reply."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import secrets
import time

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
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.callback_data import Action, DraftButton, TaskButton, decode, decode_task
from bot.caption import Caption, parse_caption
from bot.drafting import draft_problem, fit_options, image_uses, model_for_album, next_cfg
from bot.engine.images import ImageError, fetch_image, too_small
from bot.providers.camera import CODES as CAMERA_CODES
from bot.providers.catalogue import ModelSpec
from bot.render import (
    camera_menu,
    draft_keyboard,
    draft_text,
    model_menu,
    status_text,
    task_list,
)
from bot.services import Services
from bot.texts import language_of, t
from storage import Limits, Refusal
from storage.models import Draft, DraftState, GenerationOptions, ImageUse

log = logging.getLogger(__name__)

GETFILE_LIMIT = 20 * 1024 * 1024
# Telegram sends an album as separate messages within a moment of each other.
ALBUM_WAIT = 1.5
STATUS_LIMIT = 10
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

Context = ContextTypes.DEFAULT_TYPE
_INTAKE_TEXTS = {"image_too_small": "too_small", "image_fetch": "fetch_failed"}


def with_caption(options: GenerationOptions, caption: Caption) -> GenerationOptions:
    """`options` with the negative prompt and cfg_scale the caption asked for."""
    update: dict[str, object] = {}
    if caption.negative_prompt:
        update["negative_prompt"] = caption.negative_prompt
    if caption.cfg_scale is not None:
        update["cfg_scale"] = caption.cfg_scale
    return options.model_copy(update=update) if update else options


class Handlers:
    """The bot's conversation."""

    def __init__(self, services: Services, album_wait: float = ALBUM_WAIT) -> None:
        self.s = services
        self._album_wait = album_wait
        self._albums: dict[int, asyncio.Task[None]] = {}
        self._album_due: dict[int, float] = {}

    def register(self, application: Application) -> None:  # type: ignore[type-arg]
        """Attach every handler to `application`."""
        image_document = filters.Document.IMAGE
        application.add_handler(TypeHandler(Update, self.guard), group=-1)
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

    async def guard(self, update: Update, context: Context) -> None:
        """Runs first for every update: ALLOWED_USER_IDS, and chats that write again."""
        user, chat = update.effective_user, update.effective_chat
        if user is None:
            raise ApplicationHandlerStop
        if not self.s.settings.user_allowed(user.id):
            lang = language_of(user.language_code)
            if update.callback_query is not None:
                await self._answer(update.callback_query, t(lang, "answer.private"), alert=True)
            elif (
                update.effective_message is not None and chat is not None and chat.type == "private"
            ):
                await self._reply(update, t(lang, "private"))
            raise ApplicationHandlerStop
        if chat is not None and await self.s.chats.unblock(chat.id):
            log.info("chat %s writes to the bot again", chat.id)

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
        """A photo or an image file: open a draft (or ask for the prompt); albums join one."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        lang = self._lang(update)
        if message.photo:
            largest = message.photo[-1]
            if too_small(largest.width, largest.height):
                await self._reply(update, t(lang, "too_small"))
                return
            file_id = largest.file_id
        else:
            assert message.document is not None
            if (message.document.file_size or 0) > GETFILE_LIMIT:
                await self._reply(update, t(lang, "file_too_big"))
                return
            try:
                await fetch_image(context.bot, message.document.file_id)
            except ImageError as exc:
                await self._reply(update, t(lang, _INTAKE_TEXTS.get(exc.reason, "not_image")))
                return
            file_id = message.document.file_id
        caption = parse_caption(message.caption or "")
        options = with_caption(await self._default_options(user.id), caption)
        if message.media_group_id:
            draft, _ = await self.s.drafts.add_to_album(
                user_id=user.id,
                chat_id=message.chat_id,
                media_group_id=message.media_group_id,
                message_id=message.message_id,
                file_id=file_id,
                caption=caption.prompt or None,
                options=options,
                lang=lang,
            )
            if caption.negative_prompt or caption.cfg_scale is not None:
                await self.s.drafts.set_options(draft.id, with_caption(draft.options, caption))
            self._show_album_later(draft.id)
            return
        draft = await self.s.drafts.create(
            user_id=user.id,
            chat_id=message.chat_id,
            source_message_id=message.message_id,
            image_file_id=file_id,
            prompt=caption.prompt or None,
            options=options,
            lang=lang,
        )
        await self._show_new(draft)

    def _show_album_later(self, draft_id: int) -> None:
        """Show an album's draft once its photos have stopped arriving."""
        self._album_due[draft_id] = time.monotonic() + self._album_wait
        if draft_id not in self._albums:
            job = asyncio.create_task(self._show_album(draft_id), name=f"album-{draft_id}")
            self._albums[draft_id] = job
            job.add_done_callback(lambda _: self._album_shown(draft_id))

    def _album_shown(self, draft_id: int) -> None:
        del self._albums[draft_id]
        if draft_id in self._album_due:  # a photo came while the draft was being shown
            self._show_album_later(draft_id)

    async def _show_album(self, draft_id: int) -> None:
        # Each further photo moves the moment on; the draft is shown when it passes.
        while (delay := self._album_due[draft_id] - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)
        del self._album_due[draft_id]
        draft = await self.s.drafts.get(draft_id)
        if draft is None or draft.state not in (DraftState.OPEN, DraftState.AWAITING_PROMPT):
            return
        catalogue = self.s.catalogue
        current = catalogue.get(draft.options.model) or catalogue.default()
        spec = model_for_album(catalogue, current, draft.image_count)
        options = draft.options
        if draft.message_id is None:  # first showing: use the photos the natural way
            options = options.model_copy(update={"images": image_uses(spec, draft.image_count)[0]})
        options = fit_options(spec, options, draft.image_count)
        if options != draft.options:
            draft = await self._set_options(draft, options) or draft
        if draft.message_id is None:
            await self._show_new(draft)
        elif draft.state is DraftState.OPEN:
            await self._edit_draft(draft)

    async def _show_new(self, draft: Draft) -> None:
        """Reply to the draft's photo with the draft, or ask for its prompt."""
        if draft.prompt is None:
            text, markup = t(draft.lang, "ask_prompt"), None
        else:
            text, markup = self._draft_text(draft), draft_keyboard(draft, self.s.catalogue)
        sent = await self.s.messenger.bot.send_message(
            draft.chat_id,
            text,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            link_preview_options=NO_PREVIEW,
            reply_parameters=ReplyParameters(
                draft.source_message_id, allow_sending_without_reply=True
            ),
        )
        await self.s.drafts.set_message(draft.id, sent.message_id)

    async def close(self) -> None:
        """Let album drafts waiting to be shown be shown."""
        if self._albums:
            await asyncio.gather(*self._albums.values(), return_exceptions=True)

    async def not_image(self, update: Update, context: Context) -> None:
        """Files, stickers, videos, voice: explain what the bot needs."""
        await self._reply(update, t(self._lang(update), "not_image"))

    async def text(self, update: Update, context: Context) -> None:
        """Text fills the prompt of a photo sent without one; otherwise explain."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or not message.text:
            return
        waiting = await self.s.drafts.awaiting_prompt(message.chat_id, user.id)
        caption = parse_caption(message.text)
        if (
            waiting is None
            or not caption.prompt
            or not await self.s.drafts.fill_prompt(waiting.id, caption.prompt)
        ):
            await self._reply(update, t(self._lang(update), "need_photo"))
            return
        draft = await self.s.drafts.get(waiting.id)
        assert draft is not None
        if caption.negative_prompt or caption.cfg_scale is not None:
            draft = await self._set_options(draft, with_caption(draft.options, caption)) or draft
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
        task_pressed = decode_task(query.data)
        if task_pressed is not None:
            await self.task_button(query, task_pressed)
            return
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
            fitted = fit_options(spec, draft.options, draft.image_count)
            draft = await self._set_options(draft, fitted) or draft
        if pressed.action is Action.GENERATE:
            await self._generate(query, draft, spec)
        elif pressed.action is Action.CANCEL:
            await self._cancel(query, draft)
        elif pressed.action is Action.MODEL_MENU:
            await self._answer(query)
            await self._edit_markup(draft, model_menu(draft, self.s.catalogue))
        elif pressed.action is Action.CAMERA_MENU and spec.camera:
            await self._answer(query)
            await self._edit_markup(draft, camera_menu(draft))
        elif pressed.action is Action.BACK:
            await self._answer(query)
            await self._edit_markup(draft, draft_keyboard(draft, self.s.catalogue))
        else:
            await self._change_option(query, draft, spec, pressed)

    async def _change_option(
        self, query: CallbackQuery, draft: Draft, spec: ModelSpec, pressed: DraftButton
    ) -> None:
        changed = self._changed_options(draft, spec, pressed)
        if changed is None:
            await self._answer(query, t(draft.lang, "answer.unknown"))
            return
        if pressed.action is Action.TRIM:
            trimmed = (draft.prompt or "")[: spec.prompt_max].rstrip()
            if not await self.s.drafts.set_prompt(draft.id, trimmed):
                await self._answer(query, t(draft.lang, "answer.submitted"))
                return
            draft = await self.s.drafts.get(draft.id) or draft
        updated = await self._set_options(draft, changed)
        if updated is None:
            await self._answer(query, t(draft.lang, "answer.submitted"))
            return
        await self._answer(query, t(draft.lang, "answer.updated"))
        await self._edit_draft(updated)

    def _changed_options(
        self, draft: Draft, spec: ModelSpec, pressed: DraftButton
    ) -> GenerationOptions | None:
        """The options after `pressed`, or None if the button does not apply to this draft."""
        options, action, argument = draft.options, pressed.action, pressed.argument
        if action is Action.DURATION and argument is not None:
            seconds = int(argument)
            return (
                options.model_copy(update={"duration": seconds})
                if seconds in spec.durations
                else None
            )
        if action is Action.SOUND and spec.sound:
            return options.model_copy(update={"sound": not options.sound})
        if action is Action.MODE and len(spec.modes) > 1:
            index = spec.modes.index(options.mode) if options.mode in spec.modes else -1
            return options.model_copy(update={"mode": spec.modes[(index + 1) % len(spec.modes)]})
        if action is Action.CFG and spec.cfg_scale:
            return options.model_copy(update={"cfg_scale": next_cfg(options.cfg_scale)})
        if action is Action.IMAGES:
            uses = image_uses(spec, draft.image_count)
            if len(uses) < 2:
                return None
            following = (
                uses[(uses.index(options.images) + 1) % len(uses)]
                if options.images in uses
                else uses[0]
            )
            return fit_options(
                spec, options.model_copy(update={"images": following}), draft.image_count
            )
        if action is Action.CAMERA and argument is not None:
            if not spec.camera or options.images is not ImageUse.SINGLE:
                return None
            if argument == "0":
                return options.model_copy(update={"camera": None})
            name = CAMERA_CODES.get(argument)
            return options.model_copy(update={"camera": name}) if name else None
        if action is Action.TRIM and len(draft.prompt or "") > spec.prompt_max:
            return options  # the prompt changes, not the options: see _change_option
        if action is Action.MODEL and argument is not None:
            chosen = self.s.catalogue.by_code(argument)
            return fit_options(chosen, options, draft.image_count) if chosen else None
        return None

    async def _generate(self, query: CallbackQuery, draft: Draft, spec: ModelSpec) -> None:
        problem = draft_problem(draft, spec)
        if problem is not None:
            await self._answer(query, problem[:200], alert=True)
            return
        task = await self.s.tasks.claim_draft(
            draft.id, secrets.token_urlsafe(24), draft.user_id, self._limits()
        )
        if isinstance(task, Refusal):
            await self._refused(query, draft.lang, task)
            return
        await self._answer(query, t(draft.lang, "answer.starting"))
        await self.s.users.save_options(draft.user_id, draft.options)
        if task.status_message_id is not None:
            await self._edit(
                draft, status_text(task, self.s.catalogue, self.s.settings.task_timeout), None
            )
        self.s.submitter.start(task)

    def _limits(self) -> Limits:
        settings = self.s.settings
        return Limits(settings.max_active_tasks_per_user, settings.daily_tasks_per_user)

    async def _refused(self, query: CallbackQuery, lang: str, refusal: Refusal) -> None:
        settings = self.s.settings
        if refusal is Refusal.ACTIVE_LIMIT:
            text = t(lang, "answer.active_limit", limit=settings.max_active_tasks_per_user)
        elif refusal is Refusal.DAILY_LIMIT:
            text = t(lang, "answer.daily_limit", limit=settings.daily_tasks_per_user)
        else:
            text = t(lang, "answer.submitted")
        await self._answer(query, text, alert=refusal is not Refusal.ALREADY)

    async def task_button(self, query: CallbackQuery, pressed: TaskButton) -> None:
        """Buttons under status messages: Retry makes a new task from a failed one."""
        lang = language_of(query.from_user.language_code)
        task = await self.s.tasks.get(pressed.task_id)
        if task is None:
            await self._answer(query, t(lang, "answer.unknown"))
            return
        if task.user_id != query.from_user.id:
            await self._answer(query, t(lang, "answer.not_yours"), alert=True)
            return
        retry = await self.s.tasks.retry(
            task.id, secrets.token_urlsafe(24), task.status_message_id, self._limits()
        )
        if isinstance(retry, Refusal):
            if retry is Refusal.ALREADY:
                await self._answer(query, t(task.lang, "answer.retried"))
            else:
                await self._refused(query, task.lang, retry)
            return
        await self._answer(query, t(task.lang, "answer.retrying"))
        # The old status message now shows the new task; the old one keeps its row.
        await self.s.messenger.show(retry)
        self.s.submitter.start(retry)

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
            # Remember choices, not content: a negative prompt or camera move was for that photo.
            fresh = saved.model_copy(
                update={"negative_prompt": None, "camera": None, "images": ImageUse.SINGLE}
            )
            return fit_options(catalogue.default(saved.model), fresh)
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
