"""Send a claimed task to its provider: fetch the image, check it, create the task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from bot.core.failures import Failure
from bot.core.images import ImageError
from bot.core.paid import UncertainCreateError, create_once, prepare, settle
from bot.core.request import Choices, Images, RequestRefused
from bot.core.request import build_request as request_for
from bot.engine.alerts import FailureWatch
from bot.engine.gate import GateMaker, local_gates
from bot.engine.leases import Claim, Leases
from bot.engine.photos import PhotoSource, fetch_image
from bot.engine.reporting import Reporter
from bot.engine.tracker import Tracker
from bot.providers.base import ImageFile, PreparedTask, Provider, VideoRequest
from bot.providers.catalogue import Catalogue, ModelSpec
from bot.providers.errors import NotFoundError, ProviderError, ServiceUnavailableError
from bot.providers.retry import with_retries
from storage.models import ImageUse, Task, TaskState
from storage.tasks import TaskRepository

log = logging.getLogger(__name__)


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
    """The request for a task, with only what its model takes; RequestRefused if it cannot go."""
    options = task.options
    choices = Choices(
        prompt=task.prompt,
        duration=options.duration,
        mode=options.mode,
        sound=options.sound,
        negative_prompt=options.negative_prompt,
        cfg_scale=options.cfg_scale,
        camera=options.camera,
        shots=options.shots if options.multi_shot else (),
    )
    uses = options.images
    photos = Images(
        photo=images[0],
        end_frame=images[1] if uses is ImageUse.END_FRAME and len(images) > 1 else None,
        references=tuple(images) if uses is ImageUse.REFERENCES else (),
    )
    return request_for(
        spec, choices, photos, external_id=external_id(task), callback_url=callback_url
    )


class Submitter:
    """Runs each submission in the background, keeping a reference until it ends."""

    def __init__(
        self,
        photos: PhotoSource,
        tasks: TaskRepository,
        providers: dict[str, Provider],
        catalogue: Catalogue,
        tracker: Tracker,
        reporter: Reporter,
        *,
        poll_interval: float,
        public_url: str | None,
        retry_base: float = 1.0,
        stop_timeout: float = 30.0,
        watch: FailureWatch | None = None,
        leases: Leases | None = None,
        gates: GateMaker = local_gates,
    ) -> None:
        self._photos = photos
        self._leases = leases or Leases(tasks, poll_interval)
        self._tasks = tasks
        self._providers = providers
        self._catalogue = catalogue
        self._tracker = tracker
        self._reporter = reporter
        self._watch = watch or FailureWatch(reporter)
        self._poll_interval = poll_interval
        self._public_url = public_url
        self._retry_base = retry_base
        self._stop_timeout = stop_timeout
        self._gates = {
            name: gates(f"{name}:create", *provider.create_rate)
            for name, provider in providers.items()
            if provider.create_rate is not None
        }
        self._running: set[asyncio.Task[None]] = set()

    @property
    def pickup(self) -> float:
        """How long a task just claimed waits for this submitter before any process may take
        it (one lease: no longer than a submission another process left)."""
        return self._leases.length

    def start(self, task: Task, shown: asyncio.Event | None = None) -> None:
        """Submit a task just claimed, in the background; with `shown`, its lease is taken at
        once (no other process takes the task over) but the work waits until `shown` is set
        (its first status is on screen: no later one is overwritten by it)."""
        self._spawn(self._held(task, self.submit, shown), f"submit-{task.id}")

    def resume(self, task: Task) -> Awaitable[None]:
        """Take over a submission whose lease ran out (its holder died or stopped): settle it
        if its paid call may have been made, else submit it."""
        work = self.submit if task.create_started_at is None else self._settle
        return self._held(task, work)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        job = asyncio.create_task(work, name=name)
        self._running.add(job)
        job.add_done_callback(self._running.discard)

    async def stop(self) -> None:
        """Let submissions in flight finish for a while, then park them.

        A parked submission stays `submitting` under its lease; when the lease runs out the
        tracker's sweep hands it back (at the next start, on SQLite).
        """
        if not self._running:
            return
        _, pending = await asyncio.wait(self._running, timeout=self._stop_timeout)
        for job in pending:
            job.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def callback_url(self, task: Task) -> str | None:
        """Where the provider should report this task, with its secret; None without PUBLIC_URL."""
        if not self._public_url:
            return None
        return f"{self._public_url}/callbacks/{task.backend}/{task.id}/{task.callback_secret}"

    async def _held(
        self,
        task: Task,
        work: Callable[[Task, Claim], Awaitable[None]],
        shown: asyncio.Event | None = None,
    ) -> None:
        """Run `work` under a new lease on the task, unless another holder took it first."""
        try:
            claim = await self._leases.take(task)
        except Exception:
            # The task stays due: the sweep tries again, after this pause.
            log.exception("task %s: could not take its lease", task.id)
            await asyncio.sleep(self._poll_interval)
            return
        if claim is None:
            log.info("task %s: taken by another holder; left to it", task.id)
            return
        async with self._leases.kept(claim):
            if shown is not None:
                await shown.wait()
            await self._guarded(task, claim, work)

    async def _guarded(
        self, task: Task, claim: Claim, work: Callable[[Task, Claim], Awaitable[None]]
    ) -> None:
        try:
            await work(task, claim)
        except asyncio.CancelledError:
            log.info("task %s: submission parked by shutdown", task.id)
            raise
        except Exception:
            log.exception("task %s: submission crashed", task.id)
            now = await self._tasks.get(task.id)
            if now is None or now.lease_owner != claim.holder:
                return  # taken over: the new holder decides
            if now.create_started_at is not None:
                # The paid call may have gone through: never a plain failure with a Retry.
                await self._give_up(task, UncertainCreateError("crashed after the paid call"))
                return
            await self._fail(task, Failure.PROVIDER_ERROR, "internal error")

    async def submit(self, task: Task, claim: Claim) -> None:
        """Create the task at its provider and hand it to the tracker."""
        provider = self._providers.get(task.backend)
        if provider is None:
            await self._fail(task, Failure.UNKNOWN_MODEL, None)
            return
        callback_url = self.callback_url(task) if provider.sends_callbacks else None
        # The photos are dropped once prepared: a task waiting for a create slot (kie allows
        # 20 creates per 10 s) keeps only what the create call needs, not 100-300 KB of photo.
        prepared = await self._prepare(task, provider, callback_url)
        if prepared is not None:
            await self._create(task, claim, provider, prepared, callbacks=callback_url is not None)

    async def _prepare(
        self, task: Task, provider: Provider, callback_url: str | None
    ) -> PreparedTask | None:
        """Fetch the photos and do the provider's free work; None if the task failed."""
        spec = self._catalogue.get(task.options.model)
        if spec is None:
            await self._fail(task, Failure.UNKNOWN_MODEL, None)
            return None
        try:
            images = [
                await fetch_image(self._photos, file_id, provider.image_types, f"{n}")
                for n, file_id in enumerate(image_files(task))
            ]
        except ImageError as exc:
            await self._fail(task, exc.reason, None)
            return None
        try:
            request = build_request(task, spec, images, callback_url)
        except RequestRefused as exc:
            # The keyboard offers only what the map accepts; a stale draft is refused free.
            await self._fail(task, Failure.INVALID_REQUEST, exc.detail)
            return None
        try:
            return await prepare(provider, request, base=self._retry_base)
        except ProviderError as exc:
            await self._fail(task, exc.reason, exc.message)
            return None

    async def _create(
        self,
        task: Task,
        claim: Claim,
        provider: Provider,
        prepared: PreparedTask,
        *,
        callbacks: bool,
    ) -> None:
        """The paid call: repeated only while the provider surely started nothing."""
        if not await self._tasks.mark_create_started(task.id, claim.holder):
            # Another holder took the task over (this one stalled past its lease): it decides.
            log.warning("task %s: lease lost before the paid call; not made", task.id)
            return

        async def lost(exc: ProviderError) -> None:
            log.warning("task %s: create outcome unknown (%s); looking it up", task.id, exc.message)

        try:
            provider_task_id = await create_once(
                provider,
                prepared,
                external_id(task),
                base=self._retry_base,
                around_each=lambda: self._create_slot(task, provider),
                on_uncertain=lost,
            )
        except ProviderError as exc:
            log.info("task %s: create failed: %s (%s)", task.id, exc.reason, exc.message)
            await self._give_up(task, exc)
            return
        await self._queued(task, provider, provider_task_id, callbacks=callbacks)

    @contextlib.asynccontextmanager
    async def _create_slot(self, task: Task, provider: Provider) -> AsyncIterator[None]:
        """Room under the provider's create limit for one call (the user told of a wait)."""
        gate = self._gates.get(provider.name)
        if gate is None:
            yield
            return

        async def tell(ahead: int) -> None:
            await self._reporter.show_waiting(task, ahead)

        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(gate.slot(tell))
            except Exception as exc:
                # The shared gate's database, before the request: nothing was sent, so it is
                # tried again as a refusal that started nothing (never "may have started").
                detail = f"rate limit slot unavailable: {type(exc).__name__}"
                raise ServiceUnavailableError(detail, started_nothing=True) from exc
            yield

    async def _settle(self, task: Task, claim: Claim) -> None:
        """A create cut off by a restart: adopt the task if found, create again only when the
        provider proves there is none, else tell the user honestly."""
        provider = self._providers.get(task.backend)
        if provider is None:
            await self._fail(task, Failure.UNKNOWN_MODEL, None)
            return
        try:
            found = await settle(provider, external_id(task), base=self._retry_base)
        except UncertainCreateError as exc:
            log.warning("task %s: cannot tell whether it started: %s", task.id, exc.message)
            await self._give_up(task, exc)
            return
        if found is not None:
            log.info("task %s: found at %s after a restart", task.id, provider.name)
            await self._queued(task, provider, found)
        else:
            log.info("task %s: proven not created at %s; creating it", task.id, provider.name)
            await self.submit(task, claim)

    def adopt_later(self, task: Task, reported: str) -> None:
        """Adopt in the background, so the provider's callback is answered at once (kie
        allows a callback 15 s)."""
        self._spawn(self._adopt_safely(task, reported), f"adopt-{task.id}")

    async def _adopt_safely(self, task: Task, reported: str) -> None:
        try:
            await self.adopt(task, reported)
        except Exception:
            log.exception("task %s: could not adopt the task a callback named", task.id)

    async def adopt(self, task: Task, reported: str) -> bool:
        """A callback named a task whose create answer was lost: the provider did start it.

        The callback's URL carries the task's secret, so the provider knows it; the task is
        re-read before it is trusted, then tracked and delivered as usual.
        """
        if task.create_started_at is None or task.provider_task_id is not None:
            return False
        if not (
            task.state is TaskState.SUBMITTING
            or (task.state is TaskState.FAILED and task.error == Failure.UNCERTAIN)
        ):
            return False
        provider = self._providers.get(task.backend)
        if provider is None:
            return False
        candidate = reported
        if provider.can_find:
            # The official shape stores multi-image tasks under their endpoint: ask by our id.
            with contextlib.suppress(ProviderError):
                candidate = await provider.find(external_id(task)) or reported
        try:
            remote = await with_retries(
                lambda: provider.fetch(candidate),
                attempts=3,
                base=self._retry_base,
                should_retry=lambda exc: exc.retryable,
            )
        except NotFoundError:
            log.warning("task %s: a callback named an unknown task; ignored", task.id)
            return False
        except ProviderError as exc:
            # The secret in the URL says the provider knows this task; polls will re-read it.
            log.info("task %s: adopting without a re-read (%s)", task.id, exc.message)
        else:
            ours = f"/{task.id}/{task.callback_secret}"
            if remote.callback_url is not None and not remote.callback_url.endswith(ours):
                log.warning("task %s: a callback named another task; ignored", task.id)
                return False
        adopted = await self._tasks.adopt(task.id, candidate, time.time())
        if adopted is None:
            return False
        log.info("task %s: started at %s after all; tracking it", task.id, provider.name)
        await self._reporter.adopted(adopted)
        await self._reporter.show(adopted)
        return await self._tracker.callback_arrived(adopted)

    async def _queued(
        self, task: Task, provider: Provider, provider_task_id: str, *, callbacks: bool = False
    ) -> None:
        now = time.time()
        # With a callback coming, polls are only a safety net: the first waits a long while.
        first = self._tracker.first_delay(task, callbacks)
        queued = await self._tasks.advance(
            task.id,
            TaskState.QUEUED,
            provider_task_id=provider_task_id,
            submitted_at=now,
            next_poll_at=now + first,
        )
        log.info("task %s: created at %s", task.id, provider.name)
        if queued is not None:
            self._watch.worked(task.backend)
            self._tracker.poke()
            await self._reporter.show(queued)

    async def _give_up(self, task: Task, exc: ProviderError) -> None:
        """Fail a task whose create failed; an unsure one only while nothing adopted it."""
        if not isinstance(exc, UncertainCreateError):
            await self._fail(task, exc.reason, exc.message)
            return
        # A callback may have adopted the task meanwhile: only a still-unsure task fails.
        failed = await self._tasks.give_up_create(task.id, time.time())
        if failed is not None:
            await self._reporter.show(failed)
            await self._watch.failed(task.backend, Failure.UNCERTAIN, exc.message)

    async def _fail(self, task: Task, reason: Failure, detail: str | None) -> None:
        failed = await self._tasks.advance(
            task.id,
            TaskState.FAILED,
            error=reason,
            error_detail=detail,
            finished_at=time.time(),
            next_poll_at=None,
        )
        if failed is not None:
            await self._reporter.show(failed)
            await self._watch.failed(task.backend, reason, detail)
