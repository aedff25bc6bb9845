"""Drafts: a user's photo, prompt and options before Generate."""

from __future__ import annotations

import time

from storage.database import Database
from storage.models import Draft, DraftState, GenerationOptions

_INSERT = """
INSERT INTO drafts (user_id, chat_id, source_message_id, image_file_id, prompt, options, lang,
                    state, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_GET = "SELECT * FROM drafts WHERE id = ?"
_SET_MESSAGE = "UPDATE drafts SET message_id = ?, updated_at = ? WHERE id = ?"
_SET_OPTIONS = """
UPDATE drafts SET options = ?, updated_at = ? WHERE id = ? AND state = 'open'
"""
_FILL_PROMPT = """
UPDATE drafts SET prompt = ?, state = 'open', updated_at = ?
WHERE id = ? AND state = 'awaiting_prompt'
"""
_AWAITING = """
SELECT * FROM drafts WHERE chat_id = ? AND user_id = ? AND state = 'awaiting_prompt'
ORDER BY id DESC LIMIT 1
"""
_CANCEL = """
UPDATE drafts SET state = 'cancelled', updated_at = ?
WHERE id = ? AND state IN ('open', 'awaiting_prompt')
"""
_CANCEL_AWAITING = """
UPDATE drafts SET state = 'cancelled', updated_at = ?
WHERE chat_id = ? AND user_id = ? AND state = 'awaiting_prompt'
"""


class DraftRepository:
    """Reads and writes drafts."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        *,
        user_id: int,
        chat_id: int,
        source_message_id: int,
        image_file_id: str,
        prompt: str | None,
        options: GenerationOptions,
        lang: str,
    ) -> Draft:
        """Store a new draft; without a prompt it waits for one."""
        now = time.time()
        state = DraftState.OPEN if prompt else DraftState.AWAITING_PROMPT
        if state is DraftState.AWAITING_PROMPT:
            # Only the newest captionless photo of a chat waits for the next text.
            await self._db.execute(_CANCEL_AWAITING, (now, chat_id, user_id))
        draft_id = await self._db.insert(
            _INSERT,
            (
                user_id,
                chat_id,
                source_message_id,
                image_file_id,
                prompt,
                options.model_dump_json(),
                lang,
                state.value,
                now,
                now,
            ),
        )
        draft = await self.get(draft_id)
        assert draft is not None
        return draft

    async def get(self, draft_id: int) -> Draft | None:
        """The draft with this id, if any."""
        row = await self._db.fetchone(_GET, (draft_id,))
        return Draft.from_row(row) if row else None

    async def set_message(self, draft_id: int, message_id: int) -> None:
        """Remember which bot message shows the draft."""
        await self._db.execute(_SET_MESSAGE, (message_id, time.time(), draft_id))

    async def set_options(self, draft_id: int, options: GenerationOptions) -> bool:
        """Change the options of an open draft; False if it is no longer open."""
        changed = await self._db.execute(
            _SET_OPTIONS, (options.model_dump_json(), time.time(), draft_id)
        )
        return changed == 1

    async def awaiting_prompt(self, chat_id: int, user_id: int) -> Draft | None:
        """The user's newest draft in this chat that waits for its prompt."""
        row = await self._db.fetchone(_AWAITING, (chat_id, user_id))
        return Draft.from_row(row) if row else None

    async def fill_prompt(self, draft_id: int, prompt: str) -> bool:
        """Give a waiting draft its prompt and open it."""
        return await self._db.execute(_FILL_PROMPT, (prompt, time.time(), draft_id)) == 1

    async def cancel(self, draft_id: int) -> bool:
        """Drop a draft that has not been submitted."""
        return await self._db.execute(_CANCEL, (time.time(), draft_id)) == 1
