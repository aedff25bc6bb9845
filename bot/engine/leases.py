"""Claims on tasks being submitted or delivered: one holder at a time, kept alive while it works."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from storage.models import Task
from storage.tasks import TaskRepository

log = logging.getLogger(__name__)

# A lease lasts this many POLL_INTERVALs (a minute by default), at least MIN_LEASE seconds,
# and is renewed three times per length: a replica that dies mid-step is taken over after
# at most one length.
LEASE_INTERVALS = 6
MIN_LEASE = 3.0
RENEWALS_PER_LEASE = 3


class LeaseLost(Exception):
    """Another holder took the task over: whatever this one was doing, it must not go on."""


@dataclass
class Claim:
    """One holder's lease on one task."""

    task_id: int
    holder: str
    lost: bool = False


def replica_name() -> str:
    """This process, for the logs: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leases:
    """Takes, renews and gives back this process's leases."""

    def __init__(self, tasks: TaskRepository, poll_interval: float) -> None:
        self._tasks = tasks
        self.length = max(MIN_LEASE, LEASE_INTERVALS * poll_interval)
        self._replica = replica_name()

    def holder(self) -> str:
        """A new claim's token: this replica, and a nonce that sets it apart from its others."""
        return f"{self._replica}/{secrets.token_hex(6)}"

    def until(self) -> float:
        """When a lease taken or renewed now ends."""
        return time.time() + self.length

    async def take(self, task: Task) -> Claim | None:
        """Lease `task` (as read, due) to a new claim; None if another took it first."""
        holder = self.holder()
        taken = await self._tasks.take(task, holder, self.until())
        return Claim(task.id, holder) if taken is not None else None

    @asynccontextmanager
    async def kept(self, claim: Claim) -> AsyncIterator[Claim]:
        """Renew the claim's lease in the background while the block runs."""
        renewer = asyncio.create_task(self._renew(claim), name=f"lease-{claim.task_id}")
        try:
            yield claim
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _renew(self, claim: Claim) -> None:
        while True:
            await asyncio.sleep(self.length / RENEWALS_PER_LEASE)
            try:
                if not await self._tasks.renew(claim.task_id, claim.holder, self.until()):
                    # Moved on (done) or taken over: either way this holder is finished with it.
                    claim.lost = True
                    return
            except Exception:  # the database may be back before the lease runs out
                log.warning("task %s: could not renew its lease", claim.task_id, exc_info=True)
