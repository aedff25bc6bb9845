"""Deliver a finished video exactly once: claim, download to a temporary file, hand it over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from enum import Enum
from pathlib import Path

import httpx

from bot.core.download import VideoTooLarge, download_video
from bot.engine.leases import Claim, LeaseLost, Leases
from bot.engine.reporting import LinkReason, Recipient, Reporter, Sent
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
    MISSED = "missed"  # refused: tried again later
    AWAY = "away"  # the chat blocks the bot: tried when it writes again


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
    ) -> None:
        self._tasks = tasks
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
                    await self._after(task, claim, await self._link(task, LinkReason.RESENT))

    async def _finish(self, task: Task, claim: Claim) -> None:
        await self._after(task, claim, await self._send(task, claim))

    async def _after(self, task: Task, claim: Claim, outcome: Outcome) -> None:
        if outcome is Outcome.GOT:
            await self._done(task)
        elif outcome is Outcome.AWAY:
            # Not delivered, and not tried while the chat blocks the bot: sent when it writes.
            log.info("task %s: chat %s blocks the bot; sent when it writes", task.id, task.chat_id)
            # Due again at once instead if the chat wrote meanwhile (the end of this check
            # wakes the tracker).
            await self._tasks.wait_for_chat(task.id, claim.holder)
        else:
            await self._try_again_later(task)

    async def _try_again_later(self, task: Task) -> None:
        """The user got nothing: the task stays `delivering` and is tried again, for a day."""
        if time.time() - (task.finished_at or task.created_at) < GIVE_UP_AFTER:
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
        assert task.result_url is not None
        if await self._recipient.turned_away(task):
            return Outcome.AWAY
        fd, name = tempfile.mkstemp(prefix=f"kling-bot-{task.id}-", suffix=".mp4")
        os.close(fd)
        path = Path(name)
        try:
            try:
                await download_video(
                    self._client,
                    task.result_url,
                    path,
                    limit=self._upload_limit,
                    local_roots=self._local_roots,
                )
            except VideoTooLarge as exc:
                return await self._link(task, LinkReason.TOO_BIG, round(exc.size / 1024 / 1024))
            except (httpx.HTTPError, OSError) as exc:
                log.warning("task %s: download failed: %s", task.id, type(exc).__name__)
                return await self._link(task, LinkReason.UNSENT)
            return await self._upload(task, claim, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)

    async def _upload(self, task: Task, claim: Claim, path: Path) -> Outcome:
        async with self._uploads:
            return await self._upload_now(task, claim, path)

    async def _upload_now(self, task: Task, claim: Claim, path: Path) -> Outcome:
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
            return await self._link(task, LinkReason.UNSENT)
        return Outcome.GOT

    async def _link(self, task: Task, reason: LinkReason, size_mb: int = 0) -> Outcome:
        """Send the video's link."""
        if await self._recipient.send_link(task, reason, task.result_url or "", size_mb):
            return Outcome.GOT
        return Outcome.AWAY if await self._recipient.turned_away(task) else Outcome.MISSED
