"""Drafts: a user's photo, prompt and options before Generate."""

from __future__ import annotations

import json
import time

from storage.database import Database, Session
from storage.dialect import Dialect
from storage.models import AlbumImage, Draft, DraftState, GenerationOptions

MAX_ALBUM_IMAGES = 4
# A second tap of "Again" or "New prompt" within this many seconds (a double tap, or the
# same tap sent twice) finds the draft the first made instead of making another.
DOUBLE_TAP = 5.0

_INSERT = """
INSERT INTO drafts (user_id, chat_id, source_message_id, image_file_id, prompt, options, lang,
                    state, media_group_id, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# The album's first photo makes its draft; a photo arriving at the same moment on another
# connection finds the unique (chat_id, media_group_id) taken and joins that draft instead.
_START_ALBUM = _INSERT + "ON CONFLICT (chat_id, media_group_id) DO NOTHING RETURNING id"
_ALBUM = "SELECT * FROM drafts WHERE chat_id = ? AND media_group_id = ?"
# Locked until the photo is merged in, so photos merged at once are not lost (SQLite: the
# whole file is locked).
_ALBUM_FOR_UPDATE = {
    Dialect.SQLITE: _ALBUM,
    Dialect.POSTGRES: _ALBUM + " FOR UPDATE",
}
_SET_IMAGES = """
UPDATE drafts SET source_message_id = ?, image_file_id = ?, extra_images = ?, updated_at = ?
WHERE id = ?
"""
_SET_CAPTION = """
UPDATE drafts SET prompt = ?, state = 'open', updated_at = ?
WHERE id = ? AND prompt IS NULL AND state = 'awaiting_prompt'
"""
_GET = "SELECT * FROM drafts WHERE id = ?"
_FOR_PHOTO = """
SELECT * FROM drafts WHERE chat_id = ? AND source_message_id = ? AND media_group_id IS NULL
ORDER BY id LIMIT 1
"""
_SHOW_LATER = "UPDATE drafts SET show_at = ? WHERE id = ?"
# One process shows the album, once its moment has come.
_TAKE_SHOWING = """
UPDATE drafts SET show_at = NULL WHERE id = ? AND show_at IS NOT NULL AND show_at <= ?
"""
_OVERDUE = "SELECT id FROM drafts WHERE show_at IS NOT NULL AND show_at <= ? ORDER BY show_at"
_SET_MESSAGE = "UPDATE drafts SET message_id = ?, updated_at = ? WHERE id = ?"
_SET_OPTIONS = """
UPDATE drafts SET options = ?, updated_at = ?
WHERE id = ? AND state IN ('open', 'awaiting_prompt')
"""
_FILL_PROMPT = """
UPDATE drafts SET prompt = ?, state = 'open', updated_at = ?
WHERE id = ? AND state = 'awaiting_prompt'
"""
_SET_PROMPT = "UPDATE drafts SET prompt = ?, updated_at = ? WHERE id = ? AND state = 'open'"
_AWAITING = """
SELECT * FROM drafts WHERE chat_id = ? AND user_id = ? AND state = 'awaiting_prompt'
ORDER BY id DESC LIMIT 1
"""
_CANCEL = """
UPDATE drafts SET state = 'cancelled', updated_at = ?
WHERE id = ? AND state IN ('open', 'awaiting_prompt')
"""
_LATEST_OPEN = """
SELECT * FROM drafts WHERE chat_id = ? AND user_id = ? AND state IN ('open', 'awaiting_prompt')
ORDER BY id DESC LIMIT 1
"""
_TASK_ORIGIN = "SELECT prompt, chat_id, user_id FROM tasks WHERE id = ?"
_FROM_TASK = """
INSERT INTO drafts (user_id, chat_id, source_message_id, image_file_id, extra_images, prompt,
                    options, lang, state, created_at, updated_at)
SELECT user_id, chat_id, source_message_id, image_file_id, extra_images, ?, options, ?, ?, ?, ?
FROM tasks WHERE id = ?
"""
# The draft a tap on the same task's button made a moment ago, still untouched.
_SAME_FROM_TASK = """
SELECT d.* FROM drafts d JOIN tasks t ON t.id = ?
WHERE d.chat_id = t.chat_id AND d.user_id = t.user_id
  AND d.source_message_id = t.source_message_id AND d.image_file_id = t.image_file_id
  AND d.extra_images = t.extra_images AND d.options = t.options
  AND d.state = ? AND d.created_at > ? AND {prompt}
ORDER BY d.id DESC LIMIT 1
"""
_CANCEL_AWAITING = """
UPDATE drafts SET state = 'cancelled', updated_at = ?
WHERE chat_id = ? AND user_id = ? AND state = 'awaiting_prompt'
"""


async def _lock_chat_drafts(tx: Session, chat_id: int, user_id: int) -> None:
    """Make drafts waiting for a user's prompt in a chat (and drafts from a task's buttons)
    be made one after another."""
    await tx.lock(f"kling-bot:awaiting:{chat_id:d}:{user_id:d}")


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
        media_group_id: str | None = None,
    ) -> Draft:
        """Store a new draft; without a prompt it waits for one."""
        now = time.time()
        state = DraftState.OPEN if prompt else DraftState.AWAITING_PROMPT
        values = (
            user_id,
            chat_id,
            source_message_id,
            image_file_id,
            prompt,
            options.model_dump_json(),
            lang,
            state.value,
            media_group_id,
            now,
            now,
        )
        async with self._db.transaction() as tx:
            if state is DraftState.AWAITING_PROMPT:
                # Only the newest captionless photo of a chat waits for the next text.
                await _lock_chat_drafts(tx, chat_id, user_id)
                await tx.execute(_CANCEL_AWAITING, (now, chat_id, user_id))
            draft_id = await tx.insert(_INSERT, values)
            row = await tx.fetchone(_GET, (draft_id,))
        assert row is not None
        return Draft.from_row(row)

    async def add_to_album(
        self,
        *,
        user_id: int,
        chat_id: int,
        media_group_id: str,
        message_id: int,
        file_id: str,
        caption: str | None,
        options: GenerationOptions,
        lang: str,
        show_at: float | None = None,
    ) -> tuple[Draft, bool]:
        """Add one photo of an album to its draft (made by the first); True if it was made now.

        `show_at`: when the draft is to be shown, unless another photo comes before.
        """
        now = time.time()
        state = DraftState.OPEN if caption else DraftState.AWAITING_PROMPT
        async with self._db.transaction() as tx:
            started = await tx.fetchone(
                _START_ALBUM,
                (
                    user_id,
                    chat_id,
                    message_id,
                    file_id,
                    caption,
                    options.model_dump_json(),
                    lang,
                    state.value,
                    media_group_id,
                    now,
                    now,
                ),
            )
            if started is not None:
                draft_id, created = int(started["id"]), True
            else:
                row = await tx.fetchone(_ALBUM_FOR_UPDATE[tx.dialect], (chat_id, media_group_id))
                assert row is not None
                draft = Draft.from_row(row)
                if draft.state not in (DraftState.OPEN, DraftState.AWAITING_PROMPT):
                    return draft, False
                draft_id, created = draft.id, False
                # Updates of one album may be handled out of order: keep the photos in
                # message order, the first one being the start frame.
                photos = {draft.source_message_id: draft.image_file_id}
                photos.update({image.message_id: image.file_id for image in draft.extra_images})
                photos[message_id] = file_id
                ordered = sorted(photos.items())[:MAX_ALBUM_IMAGES]
                extras = [AlbumImage(message_id=m, file_id=f) for m, f in ordered[1:]]
                await tx.execute(
                    _SET_IMAGES,
                    (
                        ordered[0][0],
                        ordered[0][1],
                        json.dumps([image.model_dump() for image in extras]),
                        now,
                        draft_id,
                    ),
                )
                if caption:
                    await tx.execute(_SET_CAPTION, (caption, now, draft_id))
            if show_at is not None:
                await tx.execute(_SHOW_LATER, (show_at, draft_id))
            row = await tx.fetchone(_GET, (draft_id,))
        assert row is not None
        return Draft.from_row(row), created

    async def for_photo(self, chat_id: int, message_id: int) -> Draft | None:
        """The draft made for a photo (not of an album), if one was."""
        row = await self._db.fetchone(_FOR_PHOTO, (chat_id, message_id))
        return Draft.from_row(row) if row else None

    async def take_showing(self, draft_id: int, now: float) -> bool:
        """Whether this process shows the album's draft now: its moment came, and no other
        process took it first."""
        return await self._db.execute(_TAKE_SHOWING, (draft_id, now)) == 1

    async def overdue(self, before: float) -> list[int]:
        """Albums whose moment to be shown passed before `before` (their process died)."""
        return [int(row[0]) for row in await self._db.fetchall(_OVERDUE, (before,))]

    async def get(self, draft_id: int) -> Draft | None:
        """The draft with this id, if any."""
        row = await self._db.fetchone(_GET, (draft_id,))
        return Draft.from_row(row) if row else None

    async def set_message(self, draft_id: int, message_id: int) -> None:
        """Remember which bot message shows the draft."""
        await self._db.execute(_SET_MESSAGE, (message_id, time.time(), draft_id))

    async def set_options(self, draft_id: int, options: GenerationOptions) -> bool:
        """Change the options of a draft not yet submitted; False if it was."""
        changed = await self._db.execute(
            _SET_OPTIONS, (options.model_dump_json(), time.time(), draft_id)
        )
        return changed == 1

    async def set_prompt(self, draft_id: int, prompt: str) -> bool:
        """Change the prompt of an open draft."""
        return await self._db.execute(_SET_PROMPT, (prompt, time.time(), draft_id)) == 1

    async def awaiting_prompt(self, chat_id: int, user_id: int) -> Draft | None:
        """The user's newest draft in this chat that waits for its prompt."""
        row = await self._db.fetchone(_AWAITING, (chat_id, user_id))
        return Draft.from_row(row) if row else None

    async def fill_prompt(self, draft_id: int, prompt: str) -> bool:
        """Give a waiting draft its prompt and open it."""
        return await self._db.execute(_FILL_PROMPT, (prompt, time.time(), draft_id)) == 1

    async def latest_open(self, chat_id: int, user_id: int) -> Draft | None:
        """The user's newest draft in this chat that is not yet submitted or cancelled."""
        row = await self._db.fetchone(_LATEST_OPEN, (chat_id, user_id))
        return Draft.from_row(row) if row else None

    async def from_task(
        self, task_id: int, *, keep_prompt: bool, lang: str
    ) -> tuple[Draft, bool] | None:
        """A new draft with a task's photos and options, to generate again or re-prompt, and
        True; or the one a tap on the same button made a moment ago, and False."""
        now = time.time()
        row = await self._db.fetchone(
            "SELECT prompt, chat_id, user_id FROM tasks WHERE id = ?", (task_id,)
        )
        if row is None:
            return None
        prompt = row["prompt"] if keep_prompt else None
        state = DraftState.OPEN if prompt else DraftState.AWAITING_PROMPT
        same = _SAME_FROM_TASK.format(
            prompt="d.prompt = t.prompt" if prompt else "d.prompt IS NULL"
        )
        async with self._db.transaction() as tx:
            await _lock_chat_drafts(tx, int(row["chat_id"]), int(row["user_id"]))
            earlier = await tx.fetchone(same, (task_id, state.value, now - DOUBLE_TAP))
            if earlier is not None:
                return Draft.from_row(earlier), False
            if state is DraftState.AWAITING_PROMPT:
                await tx.execute(_CANCEL_AWAITING, (now, row["chat_id"], row["user_id"]))
            draft_id = await tx.insert(_FROM_TASK, (prompt, lang, state.value, now, now, task_id))
            created = await tx.fetchone(_GET, (draft_id,))
        assert created is not None
        return Draft.from_row(created), True

    async def cancel(self, draft_id: int) -> bool:
        """Drop a draft that has not been submitted."""
        return await self._db.execute(_CANCEL, (time.time(), draft_id)) == 1
