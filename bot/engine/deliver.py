"""Deliver a finished video exactly once: claim, download to a temporary file, hand it over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from enum import Enum
from pathlib import Path

import httpx

from bot.core.download import VideoTooLarge, download_video
from bot.core.failures import Failure
from bot.engine.leases import Claim, LeaseLost, Leases
from bot.engine.reporting import LinkReason, Recipient, Reporter, Sent
from bot.providers.base import Provider
from bot.providers.errors import NotFoundError, ProviderError
from storage.models import Task, TaskState
from storage.tasks import TaskRepository

log = logging.getLogger(__name__)

UPLOAD_LIMIT = 50 * 1024 * 1024
# Uploads at once: each holds one of Telegram's 30 messages a second until its answer (see
# bot/chat/limiter.py), so more would leave the chats' other messages waiting behind them.
UPLOADS_AT_ONCE = 5
RETRY_DELAY = 600.0
# After this long a video still refused waits for the next start (and /status shows it).
GIVE_UP_AFTER = 24 * 3600.0


class Outcome(Enum):
    """What became of one try to hand a video over."""

    GOT = "got"  # the user has the video or its link
    MISSED = "missed"  # refused: tried again later, for a day
    AWAY = "away"  # the chat blocks the bot: tried when it writes again
    LATER = "later"  # no working link to the video now: tried again (it ends when not kept)
    GONE = "gone"  # the provider no longer keeps the video: the task fails
    # The same after an upload cut off: the user may have it, the task fails saying so.
    UNSURE_GONE = "unsure_gone"


class _Expired(Exception):
    """The video is gone: the provider says so, or it is older than the provider keeps them."""


class _NotNow(Exception):
    """No working link to the video can be had now."""


class Deliverer:
    """Sends each succeeded task's video to its user once."""

    def __init__(
        self,
        tasks: TaskRepository,
        reporter: Reporter,
        recipient: Recipient,
        client: httpx.AsyncClient,
        leases: Leases,
        upload_limit: int = UPLOAD_LIMIT,
        local_roots: tuple[Path, ...] = (),
        retry_delay: float = RETRY_DELAY,
        uploads_at_once: int = UPLOADS_AT_ONCE,
        providers: Mapping[str, Provider] | None = None,
    ) -> None:
        self._tasks = tasks
        # Asked for a fresh link when a result's own has expired.
        self._providers = providers or {}
        # Taken before the upload is recorded as begun: a delivery waiting for its turn has
        # sent nothing, and is sent as a video (not a link) if it is cut off while it waits.
        self._uploads = asyncio.Semaphore(uploads_at_once)
        self._leases = leases
        # A video Telegram refused (and a link to it) is tried again this much later.
        self._retry_delay = retry_delay
        self._reporter = reporter
        self._recipient = recipient
        self._client = client
        self._upload_limit = upload_limit
        # file:// results are read only below these folders (the preview backend's output).
        self._local_roots = local_roots

    async def deliver(self, task: Task) -> None:
        """Claim the task and send its video; a task claimed elsewhere is left alone."""
        claim = Claim(task.id, self._leases.holder())
        claimed = await self._tasks.advance(
            task.id,
            TaskState.DELIVERING,
            next_poll_at=self._leases.until(),
            lease_owner=claim.holder,
            delivery_began_at=time.time(),
        )
        if claimed is None:
            return
        async with self._leases.kept(claim):
            # No "sending…" edit first: the upload_video chat action says it, one call sooner.
            with contextlib.suppress(LeaseLost):
                await self._finish(claimed, claim)

    async def recover(self, task: Task) -> None:
        """Finish a delivery cut off (or refused) before, without ever sending a second video.

        The task is taken over only if its lease ran out and no one else took it first.
        """
        claim = await self._leases.take(task)
        if claim is None:
            return
        async with self._leases.kept(claim):
            with contextlib.suppress(LeaseLost):
                if task.sending_at is None:
                    await self._finish(task, claim)  # nothing had gone to Telegram yet
                else:
                    await self._after(task, claim, await self._resend(task))

    async def _finish(self, task: Task, claim: Claim) -> None:
        await self._after(task, claim, await self._send(task, claim))

    async def _after(self, task: Task, claim: Claim, outcome: Outcome) -> None:
        if outcome is Outcome.GOT:
            await self._done(task)
        elif outcome in (Outcome.GONE, Outcome.UNSURE_GONE):
            log.warning("task %s: the provider no longer keeps its video", task.id)
            reason = Failure.EXPIRED if outcome is Outcome.GONE else Failure.EXPIRED_UNSURE
            failed = await self._tasks.advance(
                task.id, TaskState.FAILED, error=reason.value, next_poll_at=None
            )
            if failed is not None:
                await self._reporter.show(failed)
        elif outcome is Outcome.AWAY:
            # Not delivered, and not tried while the chat blocks the bot: sent when it writes.
            log.info("task %s: chat %s blocks the bot; sent when it writes", task.id, task.chat_id)
            # Due again at once instead if the chat wrote meanwhile (the end of this check
            # wakes the tracker).
            await self._tasks.wait_for_chat(task.id, claim.holder)
        elif outcome is Outcome.LATER:
            # Ends: once past the time its provider keeps videos, the next try fails it.
            await self._tasks.retry_delivery(task.id, time.time() + self._retry_delay)
        else:
            await self._try_again_later(task)

    async def _try_again_later(self, task: Task) -> None:
        """The user got nothing: the task stays `delivering` and is tried again, for a day
        from when this round of delivery began (a late one gets its day too)."""
        began = task.delivery_began_at or task.finished_at or task.created_at
        if time.time() - began < GIVE_UP_AFTER:
            await self._tasks.retry_delivery(task.id, time.time() + self._retry_delay)
        else:
            await self._tasks.unschedule(task.id)  # /stats lists it; the next start tries again

    async def _done(self, task: Task) -> None:
        done = await self._tasks.advance(
            task.id, TaskState.DELIVERED, delivered_at=time.time(), next_poll_at=None
        )
        if done is not None:
            await self._reporter.show(done)

    async def _send(self, task: Task, claim: Claim) -> Outcome:
        """Send the video, or a link to it."""
        if await self._recipient.turned_away(task):
            return Outcome.AWAY
        fd, name = tempfile.mkstemp(prefix=f"kling-bot-{task.id}-", suffix=".mp4")
        os.close(fd)
        try:
            return await self._send_through(task, claim, Path(name))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)

    async def _send_through(self, task: Task, claim: Claim, path: Path) -> Outcome:
        """Download the video into `path` and upload it, or send a link to it."""
        assert task.result_url is not None
        url = task.result_url
        try:
            try:
                await self._download(url, path)
            except httpx.HTTPStatusError as exc:
                fresh = await self._fresh_url(task) if exc.response.is_client_error else None
                if fresh is None:
                    raise
                url = fresh
                await self._download(url, path)
        except VideoTooLarge as exc:
            return await self._link(task, LinkReason.TOO_BIG, round(exc.size / 1024 / 1024), url)
        except _Expired:
            return Outcome.GONE
        except _NotNow:
            return Outcome.LATER
        except (httpx.HTTPError, OSError) as exc:
            log.warning("task %s: download failed: %s", task.id, type(exc).__name__)
            return await self._link(task, LinkReason.UNSENT, url=url)
        return await self._upload(task, claim, path, url)

    async def _download(self, url: str, path: Path) -> None:
        await download_video(
            self._client, url, path, limit=self._upload_limit, local_roots=self._local_roots
        )

    async def _fresh_url(self, task: Task) -> str | None:
        """A new link to a result whose own link refused us; None if the own one may still
        serve the user (it is younger than its provider says links last).

        Raises _Expired when the video is gone, _NotNow when no working link can be had now.
        """
        assert task.result_url is not None
        provider = self._providers.get(task.backend)
        if provider is None:
            return None
        if _older(task, provider.results_kept):
            raise _Expired
        dead = _older(task, provider.link_life)
        fresh = None
        try:
            fresh = await provider.fresh_url(task.result_url)
        except NotFoundError as exc:
            if dead:
                raise _Expired from None  # its link is past its life, and the video is gone
            log.info("task %s: no fresh link: %s (%s)", task.id, exc.reason, exc.message)
        except ProviderError as exc:
            log.warning("task %s: no fresh link: %s (%s)", task.id, exc.reason, exc.message)
            if exc.retryable:
                raise _NotNow from None
        if fresh is not None:
            log.info("task %s: its link refused us; fetched through a fresh one", task.id)
            return fresh
        if dead:
            raise _NotNow  # a link past its life: sending it would send nothing
        return None

    async def _resend(self, task: Task) -> Outcome:
        """After an upload cut off or refused: the link, never a second video (a fresh link
        when the result's own no longer works)."""
        url = task.result_url or ""
        try:
            if self._past_link_life(task) or await self._refuses(url):
                url = await self._fresh_url(task) or url
        except _Expired:
            return Outcome.UNSURE_GONE  # the upload may have arrived: no failure is claimed
        except _NotNow:
            return Outcome.LATER
        return await self._link(task, LinkReason.RESENT, url=url)

    def _past_link_life(self, task: Task) -> bool:
        """Whether the result's own link is older than its provider says links last."""
        provider = self._providers.get(task.backend)
        return provider is not None and _older(task, provider.link_life)

    async def _refuses(self, url: str) -> bool:
        """Whether the link answers with a client error (expired, gone); a local file or no
        answer at all says nothing."""
        if not url.startswith(("http://", "https://")):
            return False
        try:
            async with self._client.stream("GET", url) as response:
                return response.is_client_error
        except httpx.HTTPError:
            return False

    async def _upload(self, task: Task, claim: Claim, path: Path, url: str) -> Outcome:
        async with self._uploads:
            return await self._upload_now(task, claim, path, url)

    async def _upload_now(self, task: Task, claim: Claim, path: Path, url: str) -> Outcome:
        if not await self._recipient.ready(task):
            return Outcome.AWAY
        if not await self._tasks.mark_sending(task.id, claim.holder):
            log.warning("task %s: lease lost before the upload; left to its new holder", task.id)
            raise LeaseLost
        sent = await self._recipient.send_video(task, path)
        if sent is Sent.TURNED_AWAY:
            # Refused outright (the chat blocks the bot): the video surely did not arrive.
            await self._tasks.unmark_sending(task.id, claim.holder)
            return Outcome.AWAY
        if sent is Sent.REFUSED:
            # Whether a cut-off upload arrived is unknown; a link is never a second video.
            return await self._link(task, LinkReason.UNSENT, url=url)
        return Outcome.GOT

    async def _link(
        self, task: Task, reason: LinkReason, size_mb: int = 0, url: str | None = None
    ) -> Outcome:
        """Send the video's link (`url`, else the result's own: another works 20 minutes)."""
        own = task.result_url or ""
        link = url or own
        if await self._recipient.send_link(task, reason, link, size_mb, brief=link != own):
            return Outcome.GOT
        return Outcome.AWAY if await self._recipient.turned_away(task) else Outcome.MISSED


def _older(task: Task, seconds: float | None) -> bool:
    """Whether the task's video is older than `seconds` (None: no limit known), counted from
    its submission as the provider's links are (the bot may have seen the end much later)."""
    return seconds is not None and time.time() - (task.submitted_at or task.created_at) > seconds
