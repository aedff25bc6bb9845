"""A draft's message in its chat: sent as a reply to the photo, edited as the draft changes."""

from __future__ import annotations

from telegram import Bot, InlineKeyboardMarkup, Update

from bot.chat.replies import edit, edit_markup, reply, send
from bot.chat.texts import t
from bot.chat.views.draft import draft_keyboard, draft_text
from bot.providers.catalogue import Catalogue
from storage import DraftRepository
from storage.models import Draft


class DraftMessages:
    """Shows drafts to their owners (the draft service's `DraftScreen`)."""

    def __init__(self, bot: Bot, catalogue: Catalogue, drafts: DraftRepository) -> None:
        self._bot = bot
        self._catalogue = catalogue
        self._drafts = drafts

    async def show_new(self, draft: Draft) -> None:
        """Reply to the draft's photo with the draft, or ask for its prompt."""
        if draft.prompt is None:
            text, markup = t(draft.lang, "ask_prompt"), None
        else:
            text, markup = draft_text(draft, self._catalogue), self._keyboard(draft)
        sent = await send(self._bot, draft.chat_id, text, markup, reply_to=draft.source_message_id)
        await self._drafts.set_message(draft.id, sent.message_id)

    async def reply(self, update: Update, draft: Draft) -> None:
        """Show the draft as a reply to the update's message (the prompt that completed it)."""
        sent = await reply(update, draft_text(draft, self._catalogue), self._keyboard(draft))
        if sent is not None:
            await self._drafts.set_message(draft.id, sent.message_id)

    async def refresh(self, draft: Draft) -> bool:
        """Edit the draft's message to the draft as it is now; False if that failed."""
        return await self.edit(draft, draft_text(draft, self._catalogue), self._keyboard(draft))

    async def edit(
        self, draft: Draft, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> bool:
        """Replace the draft's message (by a status message, or "cancelled")."""
        if draft.message_id is None:
            return False
        return await edit(self._bot, draft.chat_id, draft.message_id, text, markup)

    async def edit_markup(self, draft: Draft, markup: InlineKeyboardMarkup) -> None:
        """Change only the draft's buttons (a menu, or Back from one)."""
        if draft.message_id is not None:
            await edit_markup(self._bot, draft.chat_id, draft.message_id, markup)

    def _keyboard(self, draft: Draft) -> InlineKeyboardMarkup:
        return draft_keyboard(draft, self._catalogue)
