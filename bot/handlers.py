"""Telegram handlers for drafts: photo in, options on buttons, Generate."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import secrets
import time

from telegram import CallbackQuery, InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.callback_data import Action, DraftButton, decode
from bot.caption import Caption, parse_caption
from bot.chat.photos import TelegramPhotos
from bot.core.failures import Failure
from bot.drafting import (
    apply_button,
    draft_problem,
    fit_options,
    image_uses,
    limits,
    model_for_album,
    refusal_text,
)
from bot.engine.images import LONGEST, SMALLEST, ImageError, size_problem
from bot.providers.catalogue import ModelSpec
from bot.render import camera_menu, draft_keyboard, draft_text, model_menu, status_text
from bot.replies import Context, answer, edit, edit_markup, reply, send_reply
from bot.services import Services
from bot.texts import language_of, t
from storage import Refusal
from storage.models import Draft, DraftState, GenerationOptions, ImageUse

log = logging.getLogger(__name__)

GETFILE_LIMIT = 20 * 1024 * 1024
# Telegram sends an album as separate messages within a moment of each other.
ALBUM_WAIT = 1.5
# What to tell for each reason an image is refused (anything else: "not_image").
_INTAKE_TEXTS = {
    Failure.IMAGE_TOO_SMALL: "too_small",
    Failure.IMAGE_SHAPE: "bad_shape",
    Failure.IMAGE_TOO_LARGE: "image_too_large",
    Failure.IMAGE_ANIMATED: "animation",
    Failure.IMAGE_FETCH: "fetch_failed",
}
# A GIF is an image to Telegram's filters (image/gif), but no still photo.
_ANIMATIONS = filters.ANIMATION | filters.Document.GIF
# Every message the other handlers leave, of any kind Telegram has or will have, bar commands
# (the commands' own handlers come later) and service messages (someone joined, a pin).
_ANYTHING_ELSE = ~filters.COMMAND & ~filters.StatusUpdate.ALL


def with_caption(
    options: GenerationOptions, caption: Caption, spec: ModelSpec, count: int = 1
) -> GenerationOptions:
    """`options` with what the caption asked for (negative prompt, cfg_scale, shots), fitted
    to the model's map again: shots may need a longer length, or cannot be taken at all."""
    update: dict[str, object] = {}
    if caption.negative_prompt:
        update["negative_prompt"] = caption.negative_prompt
    if caption.cfg_scale is not None:
        update["cfg_scale"] = caption.cfg_scale
    # Shots come with the prompt: a new prompt brings its own (or none), on where taken.
    update["shots"] = caption.shots
    update["multi_shot"] = bool(caption.shots)
    return fit_options(spec, options.model_copy(update=update), count)


def refusal(lang: str, reason: Failure) -> str:
    """What to tell a user whose image was refused for `reason` (an `ImageError` reason)."""
    key = _INTAKE_TEXTS.get(reason, "not_image")
    return t(lang, key, smallest=SMALLEST, longest=LONGEST)


class Handlers:
    """Photos, prompts and draft buttons."""

    def __init__(self, services: Services, album_wait: float = ALBUM_WAIT) -> None:
        self.s = services
        self._album_wait = album_wait
        self._albums: dict[int, asyncio.Task[None]] = {}
        self._album_due: dict[int, float] = {}

    def register(self, application: Application) -> None:  # type: ignore[type-arg]
        """Attach the guard, the message handlers and the draft buttons."""
        application.add_handler(TypeHandler(Update, self.guard), group=-1)
        application.add_handler(MessageHandler(_ANIMATIONS, self.animation))
        application.add_handler(MessageHandler(filters.PHOTO | filters.Document.IMAGE, self.image))
        application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, self.text))
        application.add_handler(MessageHandler(_ANYTHING_ELSE, self.not_image))
        application.add_handler(CallbackQueryHandler(self.button, pattern=r"^d:"))
        application.add_error_handler(self.error)

    async def guard(self, update: Update, context: Context) -> None:
        """Runs first for every update: ALLOWED_USER_IDS, and chats that write again."""
        user, chat = update.effective_user, update.effective_chat
        if user is None:
            raise ApplicationHandlerStop
        if not self.s.settings.user_allowed(user.id):
            lang = language_of(user.language_code)
            if update.callback_query is not None:
                await answer(update.callback_query, t(lang, "answer.private"), alert=True)
            elif (
                update.effective_message is not None and chat is not None and chat.type == "private"
            ):
                await reply(update, t(lang, "private"))
            raise ApplicationHandlerStop
        if chat is not None and await self.s.chats.unblock(chat.id):
            log.info("chat %s writes to the bot again", chat.id)

    # Messages

    async def image(self, update: Update, context: Context) -> None:
        """A photo or an image file: open a draft (or ask for the prompt); albums join one."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        lang = await self.s.language(user)
        if message.photo:
            largest = message.photo[-1]
            problem = size_problem(largest.width, largest.height)
            if problem is not None:
                await reply(update, refusal(lang, problem))
                return
            file_id = largest.file_id
        else:
            assert message.document is not None
            if (message.document.file_size or 0) > GETFILE_LIMIT:
                await reply(update, t(lang, "file_too_big"))
                return
            try:
                await TelegramPhotos(context.bot).check(message.document.file_id)
            except ImageError as exc:
                await reply(update, refusal(lang, exc.reason))
                return
            file_id = message.document.file_id
        caption = parse_caption(message.caption or "")
        defaults = await self.default_options(user.id)
        spec = self.s.catalogue.get(defaults.model) or self.s.catalogue.default()
        options = with_caption(defaults, caption, spec)
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
            if caption.negative_prompt or caption.cfg_scale is not None or caption.shots:
                album = self.s.catalogue.get(draft.options.model) or spec
                captioned = with_caption(draft.options, caption, album, draft.image_count)
                await self.s.drafts.set_options(draft.id, captioned)
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
        await self.show_new(draft)

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
            await self.show_new(draft)
        elif draft.state is DraftState.OPEN:
            await self._edit_draft(draft)

    async def show_new(self, draft: Draft) -> None:
        """Reply to the draft's photo with the draft, or ask for its prompt."""
        if draft.prompt is None:
            text, markup = t(draft.lang, "ask_prompt"), None
        else:
            text, markup = self.draft_text(draft), draft_keyboard(draft, self.s.catalogue)
        bot = self.s.messenger.bot
        sent = await send_reply(bot, draft.chat_id, draft.source_message_id, text, markup)
        await self.s.drafts.set_message(draft.id, sent.message_id)

    async def close(self) -> None:
        """Let album drafts waiting to be shown be shown."""
        if self._albums:
            await asyncio.gather(*self._albums.values(), return_exceptions=True)

    async def not_image(self, update: Update, context: Context) -> None:
        """Files, stickers, videos, voice, locations, polls…: explain what the bot needs."""
        await reply(update, t(await self.s.language(update.effective_user), "not_image"))

    async def animation(self, update: Update, context: Context) -> None:
        """GIFs, sent as animations or as files: explain that a still photo is needed."""
        await reply(update, t(await self.s.language(update.effective_user), "animation"))

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
            await reply(update, t(await self.s.language(user), "need_photo"))
            return
        draft = await self.s.drafts.get(waiting.id)
        assert draft is not None
        spec = self.s.catalogue.get(draft.options.model) or self.s.catalogue.default()
        captioned = with_caption(draft.options, caption, spec, draft.image_count)
        if captioned != draft.options:
            draft = await self._set_options(draft, captioned) or draft
        if draft.message_id is None or not await self._edit_draft(draft):
            sent = await reply(
                update, self.draft_text(draft), draft_keyboard(draft, self.s.catalogue)
            )
            if sent is not None:
                await self.s.drafts.set_message(draft.id, sent.message_id)

    # Buttons

    async def button(self, update: Update, context: Context) -> None:
        """Draft buttons; unknown, stale and foreign ones are answered too."""
        query = update.callback_query
        if query is None:
            return
        lang = await self.s.language(query.from_user)
        pressed = decode(query.data)
        if pressed is None:
            await answer(query, t(lang, "answer.unknown"))
            return
        draft = await self.s.drafts.get(pressed.draft_id)
        if draft is None or draft.state in (DraftState.CANCELLED, DraftState.AWAITING_PROMPT):
            await answer(query, t(lang, "answer.gone"))
            return
        if draft.user_id != query.from_user.id:
            await answer(query, t(lang, "answer.not_yours"), alert=True)
            return
        if draft.state is DraftState.SUBMITTED:
            await answer(query, t(draft.lang, "answer.submitted"))
            return
        spec = self.s.catalogue.get(draft.options.model)
        if spec is None:  # the model is no longer offered: move to the default
            spec = self.s.catalogue.default(self.s.settings.default_model)
            fitted = fit_options(spec, draft.options, draft.image_count)
            draft = await self._set_options(draft, fitted) or draft
        if pressed.action is Action.GENERATE:
            await self._generate(query, draft, spec)
        elif pressed.action is Action.CANCEL:
            await self._cancel(query, draft)
        elif pressed.action in (Action.MODEL_MENU, Action.MODEL_GROUP):
            await answer(query)
            menu = model_menu(draft, self.s.catalogue, pressed.argument)
            await self._edit_markup(draft, menu)
        elif pressed.action is Action.CAMERA_MENU and spec.camera:
            await answer(query)
            await self._edit_markup(draft, camera_menu(draft, spec))
        elif pressed.action is Action.BACK:
            await answer(query)
            await self._edit_markup(draft, draft_keyboard(draft, self.s.catalogue))
        elif pressed.action is Action.TRIM:
            await self._trim(query, draft, spec)
        else:
            await self._change_option(query, draft, spec, pressed)

    async def _change_option(
        self, query: CallbackQuery, draft: Draft, spec: ModelSpec, pressed: DraftButton
    ) -> None:
        changed = apply_button(draft, spec, pressed, self.s.catalogue)
        if changed is None:
            await answer(query, t(draft.lang, "answer.unknown"))
            return
        updated = await self._set_options(draft, changed)
        if updated is None:
            await answer(query, t(draft.lang, "answer.submitted"))
            return
        await answer(query, t(draft.lang, "answer.updated"))
        await self._edit_draft(updated)

    async def _trim(self, query: CallbackQuery, draft: Draft, spec: ModelSpec) -> None:
        prompt = draft.prompt or ""
        if len(prompt) <= spec.prompt_max:
            await answer(query, t(draft.lang, "answer.unknown"))
            return
        if not await self.s.drafts.set_prompt(draft.id, prompt[: spec.prompt_max].rstrip()):
            await answer(query, t(draft.lang, "answer.submitted"))
            return
        await answer(query, t(draft.lang, "answer.trimmed"))
        trimmed = await self.s.drafts.get(draft.id)
        if trimmed is not None:
            await self._edit_draft(trimmed)

    async def _generate(self, query: CallbackQuery, draft: Draft, spec: ModelSpec) -> None:
        problem = draft_problem(draft, spec)
        if problem is not None:
            await answer(query, problem, alert=True)
            return
        settings = self.s.settings
        task = await self.s.tasks.claim_draft(
            draft.id, secrets.token_urlsafe(24), draft.user_id, limits(settings)
        )
        if isinstance(task, Refusal):
            text = refusal_text(draft.lang, task, settings)
            await answer(query, text, alert=task is not Refusal.ALREADY)
            return
        await answer(query, t(draft.lang, "answer.starting"))
        if task.status_message_id is not None:
            text = status_text(task, self.s.catalogue, settings.task_timeout)
            await self._edit(draft, text)
        self.s.submitter.start(task)

    async def _cancel(self, query: CallbackQuery, draft: Draft) -> None:
        if not await self.s.drafts.cancel(draft.id):
            await answer(query, t(draft.lang, "answer.submitted"))
            return
        await answer(query, t(draft.lang, "answer.cancelled"))
        await self._edit(draft, t(draft.lang, "draft.cancelled"))

    # Helpers

    async def default_options(self, user_id: int) -> GenerationOptions:
        """The options a new draft of this user starts with: /settings, else configuration."""
        catalogue = self.s.catalogue
        saved = (await self.s.users.get(user_id)).options
        if saved is not None and catalogue.get(saved.model) is not None:
            # Choices carry over, content does not: a negative prompt was for one photo.
            fresh = saved.model_copy(
                update={
                    "negative_prompt": None,
                    "camera": None,
                    "images": ImageUse.SINGLE,
                    "shots": (),
                    "multi_shot": False,
                }
            )
            return fit_options(catalogue.default(saved.model), fresh)
        spec = catalogue.default(self.s.settings.default_model)
        return fit_options(spec, GenerationOptions(model=spec.id))

    def draft_text(self, draft: Draft) -> str:
        """The draft message, with what stops it from being generated, if anything."""
        text = draft_text(draft, self.s.catalogue)
        spec = self.s.catalogue.get(draft.options.model)
        problem = draft_problem(draft, spec) if spec else None
        return f"{text}\n\n⚠️ {html.escape(problem)}" if problem else text

    async def _set_options(self, draft: Draft, options: GenerationOptions) -> Draft | None:
        if not await self.s.drafts.set_options(draft.id, options):
            return None
        return await self.s.drafts.get(draft.id)

    async def _edit_draft(self, draft: Draft) -> bool:
        markup = draft_keyboard(draft, self.s.catalogue)
        return await self._edit(draft, self.draft_text(draft), markup)

    async def _edit(
        self, draft: Draft, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> bool:
        if draft.message_id is None:
            return False
        return await edit(self.s.messenger.bot, draft.chat_id, draft.message_id, text, markup)

    async def _edit_markup(self, draft: Draft, markup: InlineKeyboardMarkup) -> None:
        if draft.message_id is not None:
            await edit_markup(self.s.messenger.bot, draft.chat_id, draft.message_id, markup)

    async def error(self, update: object, context: Context) -> None:
        """Log the failure and tell the user something went wrong."""
        log.error("update failed", exc_info=context.error)
        if not isinstance(update, Update):
            return
        lang = language_of(update.effective_user.language_code if update.effective_user else None)
        if update.callback_query is not None:
            await answer(update.callback_query, t(lang, "error.generic"))
        elif update.effective_message is not None:
            with contextlib.suppress(TelegramError):
                await reply(update, t(lang, "error.generic"))
