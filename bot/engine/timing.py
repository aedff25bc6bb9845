"""How long generations take, learned from finished tasks, and the poll schedule built on it."""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from statistics import NormalDist

from storage.models import Task
from storage.timings import TimingRepository, read_run_times

# The newest finished tasks of a kind that make up what is learned; older ones are forgotten.
# Many: the first to finish of a wave started together are its shortest, and should not
# outweigh the rest.
KEEP = 100
# Below this many samples the built-in defaults stand in for the learned times.
LEARNED_AFTER = 5
# Samples older than this no longer describe the provider.
FORGET_AFTER = 7 * 24 * 3600.0
# Dense polls from this share of tasks done to that one, each poll covering STEP of them.
FIRST_SHARE = 0.05
LAST_SHARE = 0.95
STEP = 0.15
# One list query looks at every task in flight, so listed tasks are looked at this much oftener.
LISTED_DENSER = 3
# Outside the dense part a finished task is noticed within this share of its age.
GROWTH = 0.095
# No wait is shorter than this share of POLL_INTERVAL, nor longer than that many intervals.
MIN_GAP_SHARE = 0.1
MAX_DELAY_FACTOR = 12
# A finished task is "taking longer than usual" past this share.
USUAL_SHARE = 0.9
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Prior:
    """A built-in guess: log-normal, 5 % of tasks done by `low` seconds, 95 % by `high`."""

    low: float
    high: float

    @property
    def _middle(self) -> float:
        return math.sqrt(self.low * self.high)

    @property
    def _spread(self) -> float:
        return math.log(self.high / self.low) / (2 * _NORMAL.inv_cdf(LAST_SHARE))

    def quantile(self, share: float) -> float:
        """Seconds by which `share` of tasks are done."""
        return self._middle * math.exp(self._spread * _NORMAL.inv_cdf(share))

    def share_done(self, seconds: float) -> float:
        """The share of tasks done within `seconds`."""
        return _NORMAL.cdf(math.log(max(seconds, 1e-6) / self._middle) / self._spread)


# Until it has learned, the bot guesses in POLL_INTERVALs: Kling generations take roughly
# 1–5 min by community reports (providers.md §A), 6–30 intervals of the default 10 s; the
# local preview renders in seconds. Tests and the benchmark shrink the interval, so these too.
DEFAULT_PRIOR = (6.0, 30.0)
PRIORS: dict[str, tuple[float, float]] = {"preview": (0.1, 1.5)}


@dataclass(frozen=True)
class RunTimes:
    """How long tasks of one kind take: recent samples, or the built-in guess."""

    samples: tuple[float, ...]
    prior: Prior

    @property
    def learned(self) -> bool:
        """Whether enough tasks were seen for the samples to speak."""
        return len(self.samples) >= LEARNED_AFTER

    def quantile(self, share: float) -> float:
        """Seconds by which `share` of tasks are done (linear between samples)."""
        if not self.learned:
            return self.prior.quantile(min(max(share, 0.001), 0.999))
        ordered = self.samples
        position = min(max(share, 0.0), 1.0) * (len(ordered) - 1)
        below = math.floor(position)
        above = min(below + 1, len(ordered) - 1)
        return ordered[below] + (ordered[above] - ordered[below]) * (position - below)

    def share_done(self, seconds: float) -> float:
        """What share of tasks are done within `seconds` (the inverse of `quantile`)."""
        if not self.learned:
            return self.prior.share_done(seconds)
        ordered = self.samples
        above = bisect.bisect_right(ordered, seconds)
        if above == 0:
            return 0.0
        if above == len(ordered):
            return 1.0
        low, high = ordered[above - 1], ordered[above]
        between = (seconds - low) / (high - low) if high > low else 0.0
        return (above - 1 + between) / (len(ordered) - 1)


def kind(model: str, mode: str | None, duration: int, sound: bool | None) -> str:
    """What a generation's time depends on: backend:model · mode · duration · sound."""
    heard = "-" if sound is None else ("sound" if sound else "silent")
    return "|".join((model, mode or "-", str(duration), heard))


def kind_of(task: Task) -> str:
    """The kind of a task (see `kind`)."""
    options = task.options
    return kind(options.model, options.mode, options.duration, options.sound)


def prior_of(name: str, poll_interval: float) -> Prior:
    """The built-in guess for a kind, by its backend."""
    low, high = PRIORS.get(name.split(":", 1)[0], DEFAULT_PRIOR)
    return Prior(low * poll_interval, high * poll_interval)


@dataclass(frozen=True)
class Schedule:
    """When to look at a task of one kind, by its age.

    The next look depends only on the age at this look, so one look at many tasks at once
    (a list query) leaves each where its own schedule wants it.
    """

    times: RunTimes
    poll_interval: float
    # The share of tasks one look covers in the dense part.
    step: float = STEP

    @cached_property
    def _marks(self) -> tuple[float, float, float]:
        """The early look, the start of the dense part, and the shortest wait."""
        min_gap = self.poll_interval * MIN_GAP_SHARE
        start = self.times.quantile(FIRST_SHARE)
        early = max(min_gap, min(self.poll_interval, start))
        return early, max(start, early + min_gap), min_gap

    def next_delay(self, age: float) -> float:
        """Seconds from a look at `age` to the next one."""
        early, start, min_gap = self._marks
        if age < early - min_gap / 2:
            return early - age
        if age < start - min_gap / 2:
            return start - age
        share = self.times.share_done(age)
        if share < LAST_SHARE:
            # Each look covers `step` of the tasks, and waits at most GROWTH of the age.
            reach = self.times.quantile(min(LAST_SHARE, share + self.step))
            return max(min_gap, min(reach - age, age * GROWTH))
        return max(min_gap, min(age * GROWTH, self.poll_interval * MAX_DELAY_FACTOR))

    @cached_property
    def points(self) -> tuple[float, ...]:
        """The looks at one task on its own, in seconds of age, up to the dense part's end."""
        planned = [self.next_delay(0.0)]
        while self.times.share_done(planned[-1]) < LAST_SHARE:
            planned.append(planned[-1] + self.next_delay(planned[-1]))
        return tuple(planned)


class Timings:
    """The learned times of every kind, kept in the database and cached here."""

    def __init__(self, repository: TimingRepository, poll_interval: float) -> None:
        self._repository = repository
        self.poll_interval = poll_interval
        self._cache: dict[str, tuple[float, ...]] = {}

    async def load(self) -> None:
        """Read what earlier runs learned."""
        since = time.time() - FORGET_AFTER
        for name, seconds in (await self._repository.recent(since, KEEP)).items():
            self._cache[name] = tuple(sorted(seconds))

    async def record(self, task: Task, seconds: float) -> None:
        """Learn from one finished task."""
        name = kind_of(task)
        now = time.time()
        kept = await self._repository.add(name, seconds, now, keep=KEEP, since=now - FORGET_AFTER)
        self._cache[name] = tuple(sorted(kept))

    def of(self, task: Task) -> RunTimes:
        """What is known of how long tasks like this one take."""
        return self.of_kind(kind_of(task))

    def of_kind(self, name: str) -> RunTimes:
        """What is known of how long tasks of this kind take."""
        return RunTimes(self._cache.get(name, ()), prior_of(name, self.poll_interval))

    def schedule(self, task: Task, *, listed: bool = False) -> Schedule:
        """When to look at this task; denser when one list query looks at every task at once."""
        step = STEP / LISTED_DENSER if listed else STEP
        return Schedule(self.of(task), self.poll_interval, step)


def remaining(times: RunTimes, age: float) -> float | None:
    """Expected seconds left for a task `age` seconds old; None once it runs long."""
    if age >= times.quantile(USUAL_SHARE):
        return None
    return max(0.0, times.quantile(0.5) - age)


def polls_until(schedule: Schedule, finish: float, limit: int = 1000) -> Sequence[float]:
    """The poll moments up to the first at or after `finish` (for tests and the benchmark)."""
    moments: list[float] = []
    age = 0.0
    while len(moments) < limit:
        age += schedule.next_delay(age)
        moments.append(age)
        if age >= finish:
            break
    return moments


async def learned_times(database: Path | None, name: str, poll_interval: float) -> RunTimes:
    """A kind's times from the bot's SQLite file, read without changing it; else defaults."""
    since = time.time() - FORGET_AFTER
    samples = await read_run_times(database, name, since, KEEP) if database is not None else []
    return RunTimes(tuple(sorted(samples)), prior_of(name, poll_interval))
