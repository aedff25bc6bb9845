"""Send a claimed task to its provider: fetch the image, check it, create the task."""

from __future__ import annotations

import asyncio
import logging
import time

from pydantic import ValidationError
from telegram import Bot

from bot.engine.images import ImageError, fetch_image
from bot.engine.messenger import Messenger
from bot.engine.tracker import Tracker
from bot.providers.base import ImageFile, Provider, VideoRequest
from bot.providers.camera import PRESETS
from bot.providers.catalogue import Catalogue, ModelSpec
from bot.providers.errors import ProviderError
from bot.providers.retry import with_retries
from storage.models import ImageUse, Task, TaskState
from storage.tasks import TaskRepository

log = logging.getLogger(__name__)

# Rate limits (kie 429, Kling 1302/1303) and server errors usually pass within a minute.
CREATE_ATTEMPTS = 5


def image_files(task: Task) -> list[str]:
    """The Telegram files the task's request needs, first photo first."""
    extras = [image.file_id for image in task.extra_images]
    if task.options.images is ImageUse.END_FRAME:
        return [task.image_file_id, *extras[:1]]
    if task.options.images is ImageUse.REFERENCES:
        return [task.image_file_id, *extras]
    return [task.image_file_id]


def external_id(task: Task) -> str:
    """Our name for the task at the provider: its id, made unique per account by a nonce.

    Kling refuses a reused `external_task_id`; the nonce keeps a fresh database (or a
    second bot on the same account) from colliding with earlier tasks.
    """
    return f"kb{task.id}-{task.callback_secret[:8]}"


def build_request(
    task: Task, spec: ModelSpec, images: list[ImageFile], callback_url: str | None
) -> VideoRequest:
    """The provider-neutral request for a task, with only what its model takes."""
    options = task.options
    end_frame = options.images is ImageUse.END_FRAME and spec.end_frame and len(images) > 1
    references = options.images is ImageUse.REFERENCES and spec.multi_image
    camera = options.camera if spec.camera and not (end_frame or references) else None
    return VideoRequest(
        model=spec.name,
        prompt=task.prompt,
        image=images[0],
        duration=options.duration,
        mode=options.mode if options.mode in spec.modes else None,
        sound=options.sound if spec.sound else None,
        negative_prompt=options.negative_prompt if spec.negative_prompt_max else None,
        cfg_scale=options.cfg_scale if spec.cfg_scale else None,
        tail_image=images[1] if end_frame else None,
        reference_images=tuple(images) if references else (),
        camera=PRESETS.get(camera) if camera else None,
        callback_url=callback_url,
        external_id=external_id(task),
    )


class Submitter:
    """Runs each submission in the background, keeping a reference until it ends."""

    def __init__(
        self,
        bot: Bot,
        tasks: TaskRepository,
        providers: dict[str, Provider],
        catalogue: Catalogue,
        tracker: Tracker,
        messenger: Messenger,
        *,
        poll_interval: float,
        public_url: str | None,
        retry_base: float = 1.0,
    ) -> None:
        self._bot = bot
        self._tasks = tasks
        self._providers = providers
        self._catalogue = catalogue
        self._tracker = tracker
        self._messenger = messenger
        self._poll_interval = poll_interval
        self._public_url = public_url
        self._retry_base = retry_base
        self._running: set[asyncio.Task[None]] = set()

    def start(self, task: Task) -> None:
        """Submit `task` in the background."""
        job = asyncio.create_task(self._guarded(task), name=f"submit-{task.id}")
        self._running.add(job)
        job.add_done_callback(self._running.discard)

    async def stop(self) -> None:
        """Let submissions in flight finish: cutting one off would leave its fate unknown."""
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def callback_url(self, task: Task) -> str | None:
        """Where the provider should report this task, with its secret; None without PUBLIC_URL."""
        if not self._public_url:
            return None
        return f"{self._public_url}/callbacks/{task.backend}/{task.id}/{task.callback_secret}"

    async def _guarded(self, task: Task) -> None:
        try:
            await self.submit(task)
        except Exception:
            log.exception("task %s: submission crashed", task.id)
            await self._fail(task, "provider_error", "internal error")

    async def submit(self, task: Task) -> None:
        """Create the task at its provider and hand it to the tracker."""
        spec = self._catalogue.get(task.options.model)
        provider = self._providers.get(task.backend)
        if spec is None or provider is None:
            await self._fail(task, "unknown_model", None)
            return
        try:
            images = [
                await fetch_image(self._bot, file_id, provider.image_types, f"{n}")
                for n, file_id in enumerate(image_files(task))
            ]
        except ImageError as exc:
            await self._fail(task, exc.reason, None)
            return
        try:
            request = build_request(task, spec, images, self.callback_url(task))
        except ValidationError as exc:
            await self._fail(task, "invalid_request", str(exc.errors()[0]["msg"]))
            return
        try:
            provider_task_id = await with_retries(
                lambda: provider.create(request),
                attempts=CREATE_ATTEMPTS,
                base=self._retry_base,
            )
        except ProviderError as exc:
            log.info("task %s: create failed: %s (%s)", task.id, exc.reason, exc.message)
            await self._fail(task, exc.reason, exc.message)
            return
        now = time.time()
        queued = await self._tasks.advance(
            task.id,
            TaskState.QUEUED,
            provider_task_id=provider_task_id,
            submitted_at=now,
            next_poll_at=now + self._poll_interval,
        )
        log.info("task %s: created at %s", task.id, provider.name)
        if queued is not None:
            self._tracker.poke()
            await self._messenger.show(queued)

    async def _fail(self, task: Task, reason: str, detail: str | None) -> None:
        failed = await self._tasks.advance(
            task.id, TaskState.FAILED, error=reason, error_detail=detail, finished_at=time.time()
        )
        if failed is not None:
            await self._messenger.show(failed)
