"""Each Telegram update handled once, across restarts and replicas; one replica polls at a time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Update
from telegram.ext import Application

from bot.background import cancelled, every
from bot.chat import answers
from bot.engine.leases import replica_name
from storage.database import Database, Holding
from storage.updates import Turn, UpdateRepository

log = logging.getLogger(__name__)

# An update's handler holds it this long, renewed three times a length while it works: a
# process that dies mid-way leaves it to another this soon.
HANDLING_LEASE = 6.0
# How often a process waiting for an update another one holds looks again.
BUSY_STEP = 0.5
# Records older than a day are dropped about this often.
FORGET_EVERY = 3600.0
# How often updates whose holder died mid-way are looked for (and handled here).
RESCUE_EVERY = 2.0
# The lock whose holder alone polls getUpdates, and how often the others ask for it.
POLLING_LOCK = "kling-bot:getUpdates"
LEAD_RETRY = 5.0
LEAD_CHECK = 5.0


class UpdateLedger:
    """Takes each update before it is handled and records it handled after."""

    def __init__(self, updates: UpdateRepository, lease: float = HANDLING_LEASE) -> None:
        self._updates = updates
        self._lease = lease
        self._replica = replica_name()
        self._forgotten_at = 0.0
        self._rescuer: asyncio.Task[None] | None = None

    async def handle(
        self,
        update_id: int,
        work: Callable[[], Awaitable[None]],
        *,
        wait: bool,
        body: str | None = None,
    ) -> Turn:
        """Run `work` unless the update was handled; MINE once it ran.

        Held by another process: with `wait`, wait until it is done or its time runs out
        (then take it over); without, BUSY at once. `body` (the update's JSON) is kept so that
        another process can handle it if this one dies first.
        """
        holder = f"{self._replica}/{secrets.token_hex(6)}"
        turn = await self._updates.take(update_id, holder, time.time() + self._lease, body)
        while turn is Turn.BUSY and wait:
            await asyncio.sleep(BUSY_STEP)
            turn = await self._updates.take(update_id, holder, time.time() + self._lease, body)
        if turn not in (Turn.MINE, Turn.TAKEN_OVER):
            log.info("update %s: %s elsewhere; not handled again", update_id, turn.value)
            return turn
        sent = await self._updates.answers(update_id) if turn is Turn.TAKEN_OVER else []
        book = answers.AnswerBook(self._updates, update_id, sent)
        # Cut off by a stop (CancelledError) it stays unfinished: another process redoes it.
        renewer = asyncio.create_task(self._renew(update_id, holder), name=f"update-{update_id}")
        token = answers.use(book)
        try:
            await work()
        except Exception:
            # Handled, badly: handing it to another process would only fail again, forever.
            log.exception("update %s: its handling failed", update_id)
        finally:
            book.close()
            answers.done_with(token)
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        await self._updates.done(update_id, holder)
        await self._forget_now_and_then()
        return Turn.MINE

    def start(self, redo: Callable[[str], Awaitable[object]]) -> None:
        """Hand updates a dead process took and did not finish to `redo` (their JSON), now and
        then: Telegram counts them delivered (PTB confirms an update before it is handled)."""

        async def rescue() -> None:
            for update_id, body in await self._updates.abandoned(time.time()):
                log.warning("update %s: its handler died; handling it here", update_id)
                await redo(body)

        job = every(RESCUE_EVERY, rescue, "could not handle an abandoned update")
        self._rescuer = asyncio.create_task(job, name="update-rescue")

    async def close(self) -> None:
        """Stop looking for abandoned updates."""
        await cancelled(self._rescuer)
        self._rescuer = None

    async def _renew(self, update_id: int, holder: str) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            with contextlib.suppress(Exception):  # the database may be back before it runs out
                await self._updates.renew(update_id, holder, time.time() + self._lease)

    async def _forget_now_and_then(self) -> None:
        now = time.time()
        if now - self._forgotten_at >= FORGET_EVERY:
            self._forgotten_at = now
            with contextlib.suppress(Exception):
                await self._updates.forget(now)


class OnceApplication(Application):  # type: ignore[type-arg]
    """A PTB application that hands every update to the ledger first, when it has one."""

    ledger: UpdateLedger | None = None

    async def process_update(self, update: object) -> None:
        """Handle the update once (waiting out another process that holds it)."""
        await self.process_once(update, wait=True)

    async def process_once(self, update: object, *, wait: bool) -> Turn:
        """Handle the update unless it was handled; BUSY when held elsewhere and not `wait`."""
        if self.ledger is None or not isinstance(update, Update):
            await super().process_update(update)
            return Turn.MINE
        return await self.ledger.handle(
            update.update_id,
            lambda: super(OnceApplication, self).process_update(update),
            wait=wait,
            body=json.dumps(update.to_dict()),
        )

    async def redo(self, body: str) -> Turn:
        """Handle an update from its kept JSON (its first holder died)."""
        return await self.process_once(Update.de_json(json.loads(body), self.bot), wait=False)


async def lead_polling(
    db: Database,
    application: Application,  # type: ignore[type-arg]
    start: Callable[[], Awaitable[Any]],
    held: Holding | None = None,
) -> None:
    """Poll Telegram while this process holds the polling lock; wait for it while another does.

    `held`: the lock, taken and polling already. The lock lives as long as the holder's
    database connection: a replica that dies frees it at once, and the next one to ask
    (within LEAD_RETRY seconds) starts polling.
    """
    updater = application.updater
    assert updater is not None
    holding = held
    while True:
        if holding is None:
            holding = await db.try_hold(POLLING_LOCK)
            if holding is None:
                await asyncio.sleep(LEAD_RETRY)
                continue
            try:
                log.info("this process now takes Telegram's updates")
                await start()
            except Exception:
                log.exception("could not start polling; trying again")
        try:
            if updater.running:
                await _while_held(holding)
                log.warning("lost the polling lock (database connection); another process polls")
        finally:
            if updater.running:
                await updater.stop()
            await holding.release()
        holding = None
        await asyncio.sleep(LEAD_RETRY)


async def _while_held(holding: Holding) -> None:
    """Return when the lock is lost."""
    while True:
        await asyncio.sleep(LEAD_CHECK)
        if not await holding.alive():
            return
