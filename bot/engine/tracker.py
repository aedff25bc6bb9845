"""Follow tasks until they end: polls on the learned schedule, list sweeps, callbacks, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from bot.core.failures import Failure
from bot.engine.alerts import FailureWatch
from bot.engine.deliver import Deliverer
from bot.engine.gate import GateMaker, local_gates
from bot.engine.reporting import Reporter
from bot.engine.timing import GROWTH, MIN_GAP_SHARE, Timings
from bot.providers.base import Provider, ProviderState, ProviderTask
from bot.providers.errors import ProviderError
from storage.backends import BackendNotes
from storage.models import Task, TaskState
from storage.tasks import TaskRepository

log = logging.getLogger(__name__)

BATCH = 100
# Re-read the schedule at least this often, in case another process changed it.
MAX_SLEEP = 60.0
# After the deadline a task is still looked at now and then, for this long.
LATE_WINDOW = 24 * 3600.0
# A callback may trail the end it reports by this many POLL_INTERVALs before it counts as lost.
CALLBACK_GRACE = 3
# The status gate's window is this much wider than the backend's: requests arrive with jitter.
STATUS_MARGIN = 1.1
# How many tasks whose callback came are remembered (far more than are ever in flight).
HEARD_MEMORY = 10_000
# With other replicas, what they learned (generation times, lost callbacks) is read this often.
SHARED_REFRESH = 30.0


class Tracker:
    """Owns the loop that checks due tasks; the database says what is due."""

    def __init__(
        self,
        tasks: TaskRepository,
        providers: dict[str, Provider],
        deliverer: Deliverer,
        reporter: Reporter,
        *,
        timings: Timings,
        poll_interval: float,
        task_timeout: float,
        callback_wait: float | None = None,
        concurrency: int = 32,
        stop_timeout: float = 30.0,
        watch: FailureWatch | None = None,
        sole: bool = True,
        gates: GateMaker = local_gates,
        max_sleep: float = MAX_SLEEP,
        notes: BackendNotes | None = None,
    ) -> None:
        self._tasks = tasks
        # Lost callbacks, written for every process (None: kept in memory only).
        self._notes = notes
        self._shared_at = 0.0
        # With other replicas, a task may become due (a lease run out) without a poke here.
        self._max_sleep = max_sleep
        # The only process on its database (SQLite): leases left by an earlier run end at start.
        self._sole = sole
        # Who takes over a submission whose lease ran out (the submitter, once wired).
        self._resume: Callable[[Task], Awaitable[None]] | None = None
        self._providers = providers
        self._deliverer = deliverer
        self._reporter = reporter
        self._watch = watch or FailureWatch(reporter)
        self._timings = timings
        self._poll_interval = poll_interval
        # Status queries per backend stay within what the backend takes, across all tasks.
        self._gates = {
            name: gates(
                f"{name}:status", provider.status_rate[0], provider.status_rate[1] * STATUS_MARGIN
            )
            for name, provider in providers.items()
            if provider.status_rate is not None
        }
        # Backends that list their tasks: one sweep covers every task in flight.
        self._sweeps: dict[str, asyncio.Task[None]] = {}
        self._swept_at: dict[str, float] = {}
        self._unlisted: set[str] = set()
        self._sweep_gap = poll_interval * MIN_GAP_SHARE
        self._task_timeout = task_timeout
        self._late_interval = min(600.0, task_timeout)
        self._callback_wait = callback_wait
        # Backends whose callbacks stopped reaching us: their tasks are polled meanwhile.
        self._unheard: set[str] = set()
        # Tasks whose callback came: polled normally from then on, never counted as lost.
        self._heard: OrderedDict[int, None] = OrderedDict()
        self._judges: set[asyncio.Task[None]] = set()
        self._stop_timeout = stop_timeout
        self._wakeup = asyncio.Event()
        self._limit = asyncio.Semaphore(concurrency)
        # Status queries wait here, apart: polls waiting for a query's turn never hold up
        # deliveries, and what a poll finds is then handled under `_limit`.
        self._asking = asyncio.Semaphore(concurrency)
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False

    def hand_submissions_to(self, resume: Callable[[Task], Awaitable[None]]) -> None:
        """Submissions whose lease ran out go to `resume` (the submitter's)."""
        self._resume = resume

    async def start(self) -> None:
        """Start the loop; alone on the database, first end the leases an earlier run left."""
        if self._sole:
            # Cut off mid-way by a stop or a crash: submissions and deliveries are due now.
            await self._tasks.expire_leases(time.time())
        else:
            # With replicas leases are not ours to end; deliveries given up on for now are.
            await self._tasks.resume_deliveries(time.time())
        if self._notes is not None:
            # Still lost when the bot stopped: polled until a callback comes again.
            self._unheard = await self._notes.without_callbacks()
        self._runner = asyncio.create_task(self._run(), name="tracker")

    async def stop(self) -> None:
        """Stop the loop and wait for checks in flight; idempotent."""
        self._stopping = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        if self._inflight:
            # Deliveries in flight get a while to finish; one cut off is sent as a link later.
            _, late = await asyncio.wait(self._inflight.values(), timeout=self._stop_timeout)
            for job in late:
                job.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for judge in self._judges:
            judge.cancel()
        await asyncio.gather(*self._judges, return_exceptions=True)

    def poke(self) -> None:
        """Look at the schedule again now (a task was added or moved)."""
        self._wakeup.set()

    def first_delay(self, task: Task, callback: bool) -> float:
        """Seconds from a task's creation to its first poll."""
        if callback and self._awaits_callback(task):
            return self._callback_wait or self._poll_interval
        return self._timings.schedule(task).next_delay(0.0)

    async def wake(self, task: Task) -> bool:
        """Check this task at once; False if it is not being tracked."""
        if task.next_poll_at is None:
            return False
        if task.id in self._inflight or self._stopping:
            # The check in flight may have read the provider before this news: check again
            # after it (the schedule also survives a crash).
            await self._tasks.schedule(task.id, time.time())
            self.poke()
        else:
            self._spawn(task)
        return True

    async def callback_arrived(self, task: Task) -> bool:
        """A provider's callback named this task: its backend's callbacks reach us."""
        # Recorded for the other replicas too: a look by one of them is then no safety net.
        await self._tasks.heard(task.id, time.time())
        self._heard[task.id] = None
        self._heard.move_to_end(task.id)
        if len(self._heard) > HEARD_MEMORY:
            self._heard.popitem(last=False)
        if task.backend in self._unheard:
            log.info("%s: callbacks arrive again", task.backend)
            self._unheard.discard(task.backend)
            if self._notes is not None:
                await self._notes.callbacks_heard(task.backend)
        return await self.wake(task)

    def _awaits_callback(self, task: Task) -> bool:
        """Whether polls of this task are only a safety net for its callback."""
        provider = self._providers.get(task.backend)
        return (
            self._callback_wait is not None
            and provider is not None
            and provider.sends_callbacks
            and task.backend not in self._unheard
            and task.id not in self._heard
            and task.callback_at is None
        )

    def _suspect(self, task: Task) -> None:
        """A poll saw the end before the callback: call it lost if it does not follow soon."""
        judge = asyncio.create_task(self._judge(task), name=f"callback-judge-{task.id}")
        self._judges.add(judge)
        judge.add_done_callback(self._judges.discard)

    async def _judge(self, task: Task) -> None:
        try:
            await asyncio.sleep(CALLBACK_GRACE * self._poll_interval)
            if task.id in self._heard:
                return
            now = await self._tasks.get(task.id)  # the callback may have reached another replica
            if now is None or now.callback_at is None:
                await self._callback_lost(task)
        except Exception:
            log.exception("task %s: could not judge its callback", task.id)

    async def _callback_lost(self, task: Task) -> None:
        """The task ended and no callback came: poll this backend's tasks for now."""
        if task.backend in self._unheard:
            return
        self._unheard.add(task.backend)
        if self._notes is not None:
            await self._notes.callbacks_lost(task.backend, time.time())
        log.warning(
            "task %s: finished at %s but no callback came; polling its tasks until callbacks "
            "arrive again (is PUBLIC_URL reachable from the internet?)",
            task.id,
            task.backend,
        )
        await self._tasks.hasten(task.backend, time.time(), self._poll_interval, GROWTH)
        self.poke()

    async def refresh_shared(self) -> None:
        """Learn what the other replicas learned: generation times, backends without callbacks."""
        self._shared_at = time.time()
        await self._timings.load()
        if self._notes is not None:
            lost = await self._notes.without_callbacks()
            for backend in lost - self._unheard:
                log.info("%s: another process found its callbacks lost; polling", backend)
            self._unheard = lost

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            now = time.time()
            if not self._sole and now >= self._shared_at + SHARED_REFRESH:
                try:
                    await self.refresh_shared()
                except Exception:
                    log.exception("could not read what the other processes learned")
            listed: set[str] = set()
            for task in await self._tasks.due(now, BATCH + len(self._inflight)):
                if task.id in self._inflight or len(self._inflight) >= BATCH:
                    continue
                if self._lists(task):
                    listed.add(task.backend)
                else:
                    self._spawn(task, claim=True)
            waits = [self._sweep(backend, now) for backend in listed]
            # Tasks due by `now` are in flight or wait for a free slot; either way the end of
            # a check pokes the loop, so only later ones need a timer.
            due_at = await self._tasks.next_due_after(now)
            most = self._max_sleep
            timeout = most if due_at is None else min(most, due_at - time.time())
            timeout = min([timeout, *(wait for wait in waits if wait > 0)])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(0.0, timeout))

    def _lists(self, task: Task) -> bool:
        """Whether this task's state comes from a sweep of its backend's task list."""
        return (
            task.state in (TaskState.QUEUED, TaskState.RUNNING)
            and task.backend not in self._unlisted
            and task.backend in self._providers
        )

    def _sweep(self, backend: str, now: float) -> float:
        """Start a sweep of the backend's list unless one runs; seconds until one may start."""
        if backend in self._sweeps:
            return 0.0  # the end of the running sweep pokes the loop
        wait = self._swept_at.get(backend, 0.0) + self._sweep_gap - now
        if wait > 0:
            return wait
        self._swept_at[backend] = now
        job = asyncio.create_task(self._guarded_sweep(backend), name=f"sweep-{backend}")
        self._sweeps[backend] = job
        return 0.0

    async def _guarded_sweep(self, backend: str) -> None:
        try:
            await self._sweep_list(backend)
        except Exception:
            log.exception("%s: sweep failed", backend)
        finally:
            self._sweeps.pop(backend, None)
            self.poke()

    async def _sweep_list(self, backend: str) -> None:
        """One list call for every task of the backend in flight; per-task polls for the rest."""
        provider = self._providers[backend]
        tracked = [
            task for task in await self._tasks.tracked(backend) if task.id not in self._inflight
        ]
        if not tracked:
            return
        found: Mapping[str, ProviderTask] | None
        try:
            async with self._status_slot(backend):
                found = await provider.fetch_many([t.provider_task_id or "" for t in tracked])
        except ProviderError as exc:
            log.info("%s: task list failed: %s (%s)", backend, exc.reason, exc.message)
            found = {}
        if found is None:
            log.info("%s: no task list; polling tasks one by one", backend)
            self._unlisted.add(backend)
            found = {}
        now = time.time()
        later: list[tuple[int, float]] = []
        for task in tracked:
            if task.id in self._inflight:
                continue  # a callback's wake-up got there first
            due = task.next_poll_at is not None and task.next_poll_at <= now
            remote = found.get(task.provider_task_id or "")
            if remote is None:
                if due:
                    self._spawn(task, claim=True)  # not in the list: asked about on its own
                continue
            final = remote.state in (ProviderState.SUCCEEDED, ProviderState.FAILED)
            starts = remote.state is ProviderState.RUNNING and task.state is TaskState.QUEUED
            if due or final or starts:
                self._spawn(task, remote, due=due, claim=True)
            elif not self._awaits_callback(task):
                # Seen now: its next look is where its own schedule puts one after this.
                later.append((task.id, self._next_look(task, now)))
        await self._tasks.schedule_many(later)

    def _spawn(
        self,
        task: Task,
        remote: ProviderTask | None = None,
        *,
        due: bool = True,
        claim: bool = False,
    ) -> None:
        """Check the task in the background; with `claim`, only if no other replica took the
        look it was read due for."""
        work = self._guarded_check(task, remote, due, claim)
        self._inflight[task.id] = asyncio.create_task(work, name=f"check-{task.id}")

    async def _guarded_check(
        self, task: Task, remote: ProviderTask | None, due: bool, claim: bool
    ) -> None:
        try:
            if remote is None and task.state in (TaskState.QUEUED, TaskState.RUNNING):
                async with self._asking:
                    look = await self._look(task, None, due=due, claim=claim)
                if look is not None:
                    async with self._limit:
                        await self._act(task, look)
            elif remote is None and _late(task):
                async with self._asking:  # rare: its delivery, if any, is made here
                    await self._late_check(task)
            else:
                async with self._limit:
                    await self.check(task, remote, due=due, claim=claim)
        except Exception:
            log.exception("task %s: check failed", task.id)
            with contextlib.suppress(Exception):
                await self._tasks.count_poll(task.id, time.time() + self._poll_interval)
            if task.state in (TaskState.SUBMITTING, TaskState.DELIVERING):
                # Its lease is not moved by a poll: wait before it is found due again.
                await asyncio.sleep(self._poll_interval)
        finally:
            self._inflight.pop(task.id, None)
            self.poke()

    async def check(
        self,
        task: Task,
        remote: ProviderTask | None = None,
        *,
        due: bool = True,
        claim: bool = False,
    ) -> None:
        """Bring one task forward: poll the provider (or use `remote`), or deliver it."""
        if task.state is TaskState.SUCCEEDED:
            await self._deliverer.deliver(task)
        elif task.state in (TaskState.QUEUED, TaskState.RUNNING):
            look = await self._look(task, remote, due=due, claim=claim)
            if look is not None:
                await self._act(task, look)
        elif task.state is TaskState.DELIVERING:
            # Refused before, or its holder is gone: a link, or the video if none was sent.
            await self._deliverer.recover(task)
        elif task.state is TaskState.SUBMITTING:
            if self._resume is not None:
                await self._resume(task)  # its submitter is gone: settle or submit it
        elif _late(task):
            await self._late_check(task)
        else:
            await self._tasks.unschedule(task.id)

    async def _look(
        self, task: Task, known: ProviderTask | None, *, due: bool, claim: bool = False
    ) -> _Look | None:
        """Take this look at the task (None: another replica took it, or the task moved on)
        and ask the provider, unless `known` says already."""
        now = time.time()
        started = task.submitted_at or task.created_at
        deadline = started + self._task_timeout
        safety_net = due and self._awaits_callback(task)
        if safety_net:
            next_at = now + (self._callback_wait or self._poll_interval)
        else:
            next_at = self._next_look(task, now)
        if now < deadline:
            next_at = min(next_at, deadline)
        seen = task.next_poll_at if claim else None
        if not await self._tasks.count_poll(task.id, next_at, seen):
            return None  # a stale copy: the task ended meanwhile, or another replica looks now
        remote = known or await self._fetch(task, next_at)
        return _Look(remote, now, deadline, safety_net)

    async def _act(self, task: Task, look: _Look) -> None:
        """Act on what a look found."""
        remote, now, deadline, safety_net = look.remote, look.now, look.deadline, look.safety_net
        if remote is None:
            if now >= deadline:
                await self._time_out(task)
            return
        # A poll that sees the end before the callback came may mean the callback is lost.
        if remote.state is ProviderState.SUCCEEDED:
            await self._succeeded(task, remote, suspect=safety_net)
        elif remote.state is ProviderState.FAILED:
            reason = remote.error or remote.error_code
            failed = await self._fail(task, Failure.GENERATION_FAILED, reason)
            if failed is not None and safety_net:
                self._suspect(task)
        elif now >= deadline:
            await self._time_out(task)
        elif remote.state is ProviderState.RUNNING and task.state is TaskState.QUEUED:
            running = await self._tasks.advance(task.id, TaskState.RUNNING)
            if running is not None:
                await self._reporter.show(running)
        else:
            await self._reporter.progress(task)  # the time so far and the time left

    def _next_look(self, task: Task, now: float) -> float:
        """When to look at the task next, after a look now, by its learned schedule."""
        started = task.submitted_at or task.created_at
        schedule = self._timings.schedule(task, listed=self._lists(task))
        next_at = now + schedule.next_delay(now - started)
        return min(next_at, max(now, started + self._task_timeout))

    def _status_slot(self, backend: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Room for a status query to the backend, counted until a window after its answer
        (the backend counts it when it arrives, somewhere in between)."""
        gate = self._gates.get(backend)
        return gate.slot() if gate is not None else contextlib.nullcontext()

    async def _fetch(self, task: Task, next_at: float) -> ProviderTask | None:
        """The provider's view of the task, or None if it could not be had this time.

        Asked once the look is taken, in a status slot held until the answer.
        """
        provider = self._providers.get(task.backend)
        assert task.provider_task_id is not None
        if provider is None:
            await self._fail(task, Failure.UNKNOWN_MODEL, None)
            return None
        try:
            async with self._status_slot(task.backend):
                return await provider.fetch(task.provider_task_id)
        except ProviderError as exc:
            log.info("task %s: poll failed: %s (%s)", task.id, exc.reason, exc.message)
            hint = getattr(exc, "retry_after", None)
            if hint and time.time() + hint > next_at:
                await self._tasks.count_poll(task.id, time.time() + hint)
            return None

    async def _succeeded(self, task: Task, remote: ProviderTask, *, suspect: bool) -> None:
        now = time.time()
        done = await self._tasks.advance(
            task.id,
            TaskState.SUCCEEDED,
            result_url=remote.video_url,
            finished_at=now,
            next_poll_at=now,
        )
        if done is not None:
            self._watch.worked(task.backend)
            if suspect:
                self._suspect(task)
            await self._learn(done, remote)
            await self._deliverer.deliver(done)

    async def _learn(self, task: Task, remote: ProviderTask) -> None:
        """Remember how long the task took, by the provider's own clock."""
        if remote.took is None:
            return
        try:
            await self._timings.record(task, remote.took)
        except Exception:  # learning must never stand between a user and the video
            log.exception("task %s: could not record its generation time", task.id)

    async def _time_out(self, task: Task) -> None:
        """Give up waiting, but keep looking now and then: a late video is still delivered."""
        now = time.time()
        failed = await self._tasks.advance(
            task.id,
            TaskState.FAILED,
            error=Failure.TIMEOUT,
            finished_at=now,
            next_poll_at=now + self._late_interval,
        )
        if failed is not None:
            await self._reporter.show(failed)
            await self._watch.failed(task.backend, Failure.TIMEOUT, None)

    async def _late_check(self, task: Task) -> None:
        now = time.time()
        started = task.submitted_at or task.created_at
        if now - started > LATE_WINDOW or task.provider_task_id is None:
            await self._tasks.unschedule(task.id)
            return
        await self._tasks.count_poll(task.id, now + self._late_interval)
        remote = await self._fetch(task, now + self._late_interval)
        if remote is None:
            return
        if remote.state is ProviderState.SUCCEEDED and remote.video_url:
            revived = await self._tasks.revive(task.id, remote.video_url)
            if revived is not None:
                log.info("task %s: finished after its deadline; delivering", task.id)
                await self._deliverer.deliver(revived)
        elif remote.state is ProviderState.FAILED:
            await self._tasks.unschedule(task.id)

    async def _fail(self, task: Task, reason: Failure, detail: str | None) -> Task | None:
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
        return failed


@dataclass(frozen=True)
class _Look:
    """What one look at a running task found, and when."""

    remote: ProviderTask | None  # None: the provider could not be asked this time
    now: float
    deadline: float
    safety_net: bool  # a poll while a callback is awaited


def _late(task: Task) -> bool:
    """Whether the task timed out and is still looked at now and then (a late video)."""
    return task.state is TaskState.FAILED and task.error == Failure.TIMEOUT
