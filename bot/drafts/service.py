"""The draft service: open drafts, change their options, and start them (or retry a task)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from bot.background import cancelled, every
from bot.config import Settings
from bot.core.caption import parse_caption
from bot.drafts.options import (
    Option,
    Problem,
    apply_default,
    draft_problem,
    fit_options,
    image_uses,
    limits,
    model_for_album,
    with_caption,
)
from bot.engine.submit import Submitter
from bot.providers.catalogue import Catalogue, ModelSpec
from storage import (
    DraftRepository,
    Refusal,
    TaskRepository,
    UserSettingsRepository,
)
from storage.models import Draft, DraftState, GenerationOptions, ImageUse, Task

log = logging.getLogger(__name__)

# Telegram sends an album as separate messages within a moment of each other.
ALBUM_WAIT = 1.5

# Called with a task just claimed, before it is submitted: the chat shows it first.
Announce = Callable[[Task], Awaitable[None]]


class DraftScreen(Protocol):
    """Where drafts are shown to their owners; the Telegram layer draws them."""

    async def show_new(self, draft: Draft) -> None:
        """Show a draft for the first time (or ask for its prompt)."""

    async def refresh(self, draft: Draft) -> bool:
        """Show a shown draft as it is now; False if its message could not be edited."""


@dataclass(frozen=True)
class Photo:
    """A photo that came in: whose, where, and the album it belongs to."""

    user_id: int
    chat_id: int
    message_id: int
    file_id: str
    media_group_id: str | None = None


@dataclass(frozen=True)
class Started:
    """The draft (or the failed task) became this task, which is being submitted."""

    task: Task


@dataclass(frozen=True)
class Refused:
    """No task was made: the user's limits, or it was made already."""

    refusal: Refusal


class Declined(Enum):
    """Why a change to a draft was not made."""

    NOT_HERE = "not_here"  # the choice does not apply to this draft now
    SUBMITTED = "submitted"  # the draft was generated or cancelled meanwhile


class DraftService:
    """Everything done to drafts, for the handlers of every feature."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        drafts: DraftRepository,
        tasks: TaskRepository,
        users: UserSettingsRepository,
        submitter: Submitter,
        screen: DraftScreen,
        album_wait: float = ALBUM_WAIT,
    ) -> None:
        self._settings = settings
        self._catalogue = catalogue
        self._drafts = drafts
        self._tasks = tasks
        self._users = users
        self._submitter = submitter
        self._screen = screen
        self._album_wait = album_wait
        self._albums: dict[int, asyncio.Task[None]] = {}
        self._album_due: dict[int, float] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # Opening

    async def default_options(self, user_id: int) -> GenerationOptions:
        """The options a new draft of this user starts with: /settings, else configuration."""
        catalogue = self._catalogue
        saved = (await self._users.get(user_id)).options
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
        spec = catalogue.default(self._settings.default_model)
        return fit_options(spec, GenerationOptions(model=spec.id))

    async def open(self, photo: Photo, caption_text: str, lang: str) -> Draft | None:
        """A new draft for a photo, to be shown now; None for a photo of an album, whose
        draft is shown once its photos have stopped arriving."""
        caption = parse_caption(caption_text)
        defaults = await self.default_options(photo.user_id)
        spec = self._catalogue.get(defaults.model) or self._catalogue.default()
        options = with_caption(defaults, caption, spec)
        if photo.media_group_id:
            draft, _ = await self._drafts.add_to_album(
                user_id=photo.user_id,
                chat_id=photo.chat_id,
                media_group_id=photo.media_group_id,
                message_id=photo.message_id,
                file_id=photo.file_id,
                caption=caption.prompt or None,
                options=options,
                lang=lang,
                show_at=time.time() + self._album_wait,
            )
            if caption.negative_prompt or caption.cfg_scale is not None or caption.shots:
                album = self._catalogue.get(draft.options.model) or spec
                captioned = with_caption(draft.options, caption, album, draft.image_count)
                await self._drafts.set_options(draft.id, captioned)
            self._show_album_later(draft.id)
            return None
        made = await self._drafts.for_photo(photo.chat_id, photo.message_id)
        if made is not None:
            # The photo's update handled again (its first handler died mid-way): show the
            # draft if it was not, never make a second one.
            return made if made.message_id is None else None
        return await self._drafts.create(
            user_id=photo.user_id,
            chat_id=photo.chat_id,
            source_message_id=photo.message_id,
            image_file_id=photo.file_id,
            prompt=caption.prompt or None,
            options=options,
            lang=lang,
        )

    async def fill_prompt(self, chat_id: int, user_id: int, text: str) -> Draft | None:
        """The draft waiting for its prompt, with `text` as its prompt; None if none waits."""
        waiting = await self._drafts.awaiting_prompt(chat_id, user_id)
        caption = parse_caption(text)
        if (
            waiting is None
            or not caption.prompt
            or not await self._drafts.fill_prompt(waiting.id, caption.prompt)
        ):
            return None
        draft = await self._drafts.get(waiting.id)
        assert draft is not None
        spec = self._catalogue.get(draft.options.model) or self._catalogue.default()
        captioned = with_caption(draft.options, caption, spec, draft.image_count)
        if captioned != draft.options:
            draft = await self.set_options(draft, captioned) or draft
        return draft

    async def redraft(
        self, task_id: int, *, keep_prompt: bool, lang: str
    ) -> tuple[Draft, bool] | None:
        """A new draft from a task (its photo and options, with its prompt or waiting for one)
        and True; the one a double tap's first tap made, and False."""
        return await self._drafts.from_task(task_id, keep_prompt=keep_prompt, lang=lang)

    # Albums

    def _show_album_later(self, draft_id: int, delay: float | None = None) -> None:
        """Show an album's draft once its photos have stopped arriving."""
        wait = self._album_wait if delay is None else delay
        self._album_due[draft_id] = time.monotonic() + wait
        if draft_id not in self._albums:
            job = asyncio.create_task(self._show_album(draft_id), name=f"album-{draft_id}")
            self._albums[draft_id] = job
            job.add_done_callback(lambda _: self._album_shown(draft_id))

    def _album_shown(self, draft_id: int) -> None:
        del self._albums[draft_id]
        if draft_id in self._album_due:  # a photo came while the draft was being shown
            self._show_album_later(draft_id)

    async def _show_album(self, draft_id: int) -> None:
        # Each further photo moves the moment on (here, or in the database when another
        # process took the photo); the one process that takes the moment shows the draft.
        while True:
            delay = self._album_due[draft_id] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            if await self._drafts.take_showing(draft_id, time.time()):
                break
            later = await self._drafts.get(draft_id)
            if later is None or later.show_at is None:  # shown by another process
                del self._album_due[draft_id]
                return
            self._album_due[draft_id] = time.monotonic() + max(later.show_at - time.time(), 0.0)
        del self._album_due[draft_id]
        draft = await self._drafts.get(draft_id)
        if draft is None or draft.state not in (DraftState.OPEN, DraftState.AWAITING_PROMPT):
            return
        catalogue = self._catalogue
        current = catalogue.get(draft.options.model) or catalogue.default()
        spec = model_for_album(catalogue, current, draft.image_count)
        options = draft.options
        if draft.message_id is None:  # first showing: use the photos the natural way
            options = options.model_copy(update={"images": image_uses(spec, draft.image_count)[0]})
        options = fit_options(spec, options, draft.image_count)
        if options != draft.options:
            draft = await self.set_options(draft, options) or draft
        if draft.message_id is None:
            await self._screen.show_new(draft)
        elif draft.state is DraftState.OPEN:
            await self._screen.refresh(draft)

    def start(self) -> None:
        """Look now and then for albums a process that died left unshown."""
        failed = "could not look for albums left unshown"
        job = every(2 * self._album_wait, self._sweep_albums, failed)
        self._sweeper = asyncio.create_task(job, name="album-sweep")

    async def _sweep_albums(self) -> None:
        # An album overdue by one wait was left by a process that died (its timer is gone).
        for draft_id in await self._drafts.overdue(time.time() - self._album_wait):
            if draft_id not in self._albums:
                self._show_album_later(draft_id, delay=0.0)

    async def close(self) -> None:
        """Stop sweeping; let album drafts waiting to be shown be shown."""
        await cancelled(self._sweeper)
        self._sweeper = None
        if self._albums:
            await asyncio.gather(*self._albums.values(), return_exceptions=True)

    # Changing

    async def get(self, draft_id: int) -> Draft | None:
        """The draft, as it is now."""
        return await self._drafts.get(draft_id)

    async def shown_in(self, draft: Draft, message_id: int) -> Draft:
        """The draft, knowing the message its buttons were pressed in: a press can come before
        the message it was shown in is recorded, and a task started then could not show its
        status in place."""
        if draft.message_id is not None:
            return draft
        await self._drafts.set_message(draft.id, message_id)
        return draft.model_copy(update={"message_id": message_id})

    async def with_model(self, draft: Draft) -> tuple[Draft, ModelSpec]:
        """The draft and its model; a model no longer offered is replaced by the default."""
        spec = self._catalogue.get(draft.options.model)
        if spec is None:
            spec = self._catalogue.default(self._settings.default_model)
            fitted = fit_options(spec, draft.options, draft.image_count)
            draft = await self.set_options(draft, fitted) or draft
        return draft, spec

    async def set_options(self, draft: Draft, options: GenerationOptions) -> Draft | None:
        """The draft with `options`; None if it is no longer open to changes."""
        if not await self._drafts.set_options(draft.id, options):
            return None
        return await self._drafts.get(draft.id)

    async def trim(self, draft: Draft, spec: ModelSpec) -> Draft | Declined | None:
        """The draft with its prompt cut to the model's limit (None if it vanished meanwhile)."""
        prompt = draft.prompt or ""
        if len(prompt) <= spec.prompt_max:
            return Declined.NOT_HERE
        if not await self._drafts.set_prompt(draft.id, prompt[: spec.prompt_max].rstrip()):
            return Declined.SUBMITTED
        return await self._drafts.get(draft.id)

    async def cancel(self, draft: Draft) -> bool:
        """Drop an open draft; False if it was generated or cancelled already."""
        return await self._drafts.cancel(draft.id)

    async def cancel_latest(self, chat_id: int, user_id: int) -> Draft | None:
        """Drop the user's open draft in this chat; the draft dropped, or None."""
        draft = await self._drafts.latest_open(chat_id, user_id)
        if draft is None or not await self._drafts.cancel(draft.id):
            return None
        return draft

    async def change_default(
        self, user_id: int, options: GenerationOptions, option: Option, argument: str | None
    ) -> GenerationOptions | None:
        """Save the user's defaults after a choice in /settings; None if it does not apply."""
        changed = apply_default(options, option, argument, self._catalogue)
        if changed is not None:
            await self._users.save_options(user_id, changed)
        return changed

    # Starting

    async def generate(
        self, draft: Draft, spec: ModelSpec, announce: Announce
    ) -> Started | Refused | Problem:
        """Claim the draft as a task (once, within the user's limits) and start it."""
        problem = draft_problem(draft, spec)
        if problem is not None:
            return problem
        claimed = await self._tasks.claim_draft(
            draft.id,
            secrets.token_urlsafe(24),
            draft.user_id,
            limits(self._settings),
            pickup=self._submitter.pickup,
        )
        return await self._start(claimed, announce)

    async def retry(self, task: Task, announce: Announce) -> Started | Refused:
        """A new task for a failed one (once per failure, within the limits), started."""
        claimed = await self._tasks.retry(
            task.id,
            secrets.token_urlsafe(24),
            task.status_message_id,
            limits(self._settings),
            pickup=self._submitter.pickup,
        )
        return await self._start(claimed, announce)

    async def _start(self, claimed: Task | Refusal, announce: Announce) -> Started | Refused:
        if isinstance(claimed, Refusal):
            return Refused(claimed)
        # Leased at once, submitted once shown: however long showing it takes, no other
        # process takes it over, and no later state is overwritten by this one.
        shown = asyncio.Event()
        self._submitter.start(claimed, shown)
        try:
            await announce(claimed)
        finally:
            shown.set()
        return Started(claimed)
