"""The draft: its prompt typed after the photo, its buttons, Generate, and /cancel."""

from __future__ import annotations

from telegram import CallbackQuery, Update

from bot.chat.callback_data import DRAFT_OPTIONS, Action, DraftButton, decode
from bot.chat.replies import Context, answer, reply
from bot.chat.services import Services
from bot.chat.texts import t
from bot.chat.views.camera import camera_menu
from bot.chat.views.draft import draft_keyboard, problem_text
from bot.chat.views.models import model_menu
from bot.chat.views.refusals import claim_refusal
from bot.chat.views.status import status_text
from bot.drafts.options import Problem, apply_option
from bot.drafts.service import Declined, Refused
from bot.providers.catalogue import Catalogue, ModelSpec
from storage import Refusal
from storage.models import Draft, DraftState, GenerationOptions, Task


def apply_button(
    draft: Draft, spec: ModelSpec, pressed: DraftButton, catalogue: Catalogue
) -> GenerationOptions | None:
    """The options after an option button, or None if the button does not apply here."""
    option = DRAFT_OPTIONS.get(pressed.action)
    if option is None:
        return None
    return apply_option(draft, spec, option, pressed.argument, catalogue)


class Drafts:
    """Prompts for drafts that wait for one, the draft buttons, and /cancel."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self.messages = services.draft_messages

    async def text(self, update: Update, context: Context) -> None:
        """Text fills the prompt of a photo sent without one; otherwise explain."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or not message.text:
            return
        draft = await self.s.drafts.fill_prompt(message.chat_id, user.id, message.text)
        if draft is None:
            await reply(update, t(await self.s.language(user), "need_photo"))
            return
        if draft.message_id is None or not await self.messages.refresh(draft):
            await self.messages.reply(update, draft)

    async def cancel(self, update: Update, context: Context) -> None:
        """Drop the user's open draft in this chat."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        lang = await self.s.language(user)
        draft = await self.s.drafts.cancel_latest(message.chat_id, user.id)
        if draft is None:
            await reply(update, t(lang, "cancel.none"))
            return
        await self.messages.edit(draft, t(draft.lang, "draft.cancelled"))
        await reply(update, t(lang, "cancel.done"))

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
        found = await self.s.drafts.get(pressed.draft_id)
        if found is None or found.state in (DraftState.CANCELLED, DraftState.AWAITING_PROMPT):
            await answer(query, t(lang, "answer.gone"))
            return
        if found.user_id != query.from_user.id:
            await answer(query, t(lang, "answer.not_yours"), alert=True)
            return
        if found.state is DraftState.SUBMITTED:
            await answer(query, t(found.lang, "answer.submitted"))
            return
        pressed_in = query.message
        if pressed_in is not None and pressed_in.chat.id == found.chat_id:
            found = await self.s.drafts.shown_in(found, pressed_in.message_id)
        draft, spec = await self.s.drafts.with_model(found)
        if pressed.action is Action.GENERATE:
            await self._generate(query, draft, spec)
        elif pressed.action is Action.CANCEL:
            await self._cancel(query, draft)
        elif pressed.action in (Action.MODEL_MENU, Action.MODEL_GROUP):
            await answer(query)
            menu = model_menu(draft, self.s.catalogue, pressed.argument)
            await self.messages.edit_markup(draft, menu)
        elif pressed.action is Action.CAMERA_MENU and spec.camera:
            await answer(query)
            await self.messages.edit_markup(draft, camera_menu(draft, spec))
        elif pressed.action is Action.BACK:
            await answer(query)
            await self.messages.edit_markup(draft, draft_keyboard(draft, self.s.catalogue))
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
        updated = await self.s.drafts.set_options(draft, changed)
        if updated is None:
            await answer(query, t(draft.lang, "answer.submitted"))
            return
        await answer(query, t(draft.lang, "answer.updated"))
        await self.messages.refresh(updated)

    async def _trim(self, query: CallbackQuery, draft: Draft, spec: ModelSpec) -> None:
        trimmed = await self.s.drafts.trim(draft, spec)
        if trimmed is Declined.NOT_HERE:
            await answer(query, t(draft.lang, "answer.unknown"))
            return
        if trimmed is Declined.SUBMITTED:
            await answer(query, t(draft.lang, "answer.submitted"))
            return
        await answer(query, t(draft.lang, "answer.trimmed"))
        if trimmed is not None:
            await self.messages.refresh(trimmed)

    async def _generate(self, query: CallbackQuery, draft: Draft, spec: ModelSpec) -> None:
        async def announce(task: Task) -> None:
            await answer(query, t(draft.lang, "answer.starting"))
            if task.status_message_id is not None:
                text = status_text(task, self.s.catalogue, self.s.settings.task_timeout)
                await self.messages.edit(draft, text)

        outcome = await self.s.drafts.generate(draft, spec, announce)
        if isinstance(outcome, Problem):
            await answer(query, problem_text(draft.lang, outcome), alert=True)
        elif isinstance(outcome, Refused):
            text = claim_refusal(draft.lang, outcome.refusal, self.s.settings)
            await answer(query, text, alert=outcome.refusal is not Refusal.ALREADY)

    async def _cancel(self, query: CallbackQuery, draft: Draft) -> None:
        if not await self.s.drafts.cancel(draft):
            await answer(query, t(draft.lang, "answer.submitted"))
            return
        await answer(query, t(draft.lang, "answer.cancelled"))
        await self.messages.edit(draft, t(draft.lang, "draft.cancelled"))
