"""Learned generation times and the poll schedule built on them."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from statistics import NormalDist

import pytest

from bot.chat.views.status import eta
from bot.engine import timing
from bot.engine.timing import (
    GROWTH,
    KEEP,
    LEARNED_AFTER,
    Prior,
    RunTimes,
    Schedule,
    Timings,
    kind,
    learned_times,
    polls_until,
    remaining,
)
from storage import Database, TimingRepository
from storage.models import GenerationOptions, Task, TaskState
from tests.conftest import task_row

POLL = 10.0  # the default POLL_INTERVAL
NAIVE = 5.0  # the baseline the issue compares against: a poll every 5 s
GOLDEN = 0.6180339887498949
DEFAULT_PRIOR = Prior(60.0, 300.0)  # the defaults at POLL_INTERVAL = 10 s


def spread(count: int, low: float, high: float) -> list[float]:
    """`count` times spread evenly over [low, high], in no particular order."""
    return [low + (high - low) * ((n * GOLDEN) % 1.0) for n in range(1, count + 1)]


def bell(count: int, mean: float, sigma: float) -> list[float]:
    """`count` times of a normal distribution clipped to ±3σ, in no particular order."""
    normal = NormalDist(mean, sigma)
    shares = [min(max((n * GOLDEN) % 1.0, 0.0015), 0.9985) for n in range(1, count + 1)]
    return [normal.inv_cdf(share) for share in shares]


def learned(samples: list[float]) -> RunTimes:
    return RunTimes(tuple(sorted(samples[-KEEP:])), DEFAULT_PRIOR)


def naive_polls(finished: float) -> int:
    return math.ceil(finished / NAIVE)


def task(**options: object) -> Task:
    """A generating task of kie's Kling 2.6 (5 s, silent), `options` changed."""
    fields: dict[str, object] = {"model": "kie:kling-2.6/image-to-video", "duration": 5}
    fields.update({"sound": False, **options})
    return task_row(
        GenerationOptions.model_validate(fields),
        state=TaskState.RUNNING,
        provider_task_id="x",
        submitted_at=0.0,
    )


@pytest.mark.parametrize(
    "times",
    [
        RunTimes((), DEFAULT_PRIOR),
        learned(spread(KEEP, 120, 300)),
        learned(bell(KEEP, 60, 6)),
        learned(spread(KEEP, 42, 78)),
    ],
    ids=["defaults", "2-5 min", "60 s bell", "60 s even"],
)
def test_from_the_dense_part_on_a_finished_task_is_noticed_within_a_tenth_of_its_age(
    times: RunTimes,
) -> None:
    schedule = Schedule(times, POLL)
    start = schedule.points[1]
    for finished in (start + n * 0.5 for n in range(3600)):
        noticed = polls_until(schedule, finished)[-1]
        assert noticed - finished <= GROWTH * finished + 1e-6, finished
    assert GROWTH < 0.10


def test_the_first_poll_is_early_and_never_after_the_likely_end() -> None:
    assert Schedule(learned(spread(KEEP, 120, 300)), POLL).next_delay(0) == POLL
    # A preview takes seconds: its first look is when the first ones are done, not at 10 s.
    quick = Schedule(learned(spread(KEEP, 2, 4)), POLL)
    assert quick.next_delay(0) == pytest.approx(quick.times.quantile(timing.FIRST_SHARE))


def test_tasks_of_two_to_five_minutes_take_five_times_fewer_polls_than_every_five_s() -> None:
    schedule = Schedule(learned(spread(KEEP, 120, 300)), POLL)
    ends = spread(600, 120, 300)
    ours = statistics.mean(len(polls_until(schedule, end)) for end in ends)
    naive = statistics.mean(naive_polls(end) for end in ends)
    assert naive / ours >= 5.0, (naive, ours)


@pytest.mark.parametrize("samples", [bell(600, 60, 6), spread(600, 42, 78)], ids=["bell", "even"])
def test_minute_tasks_are_noticed_sooner_than_every_five_s_with_half_the_polls(
    samples: list[float],
) -> None:
    schedule = Schedule(learned(samples[:KEEP]), POLL)
    ours = [polls_until(schedule, end) for end in samples]
    delay = statistics.median(polls[-1] - end for polls, end in zip(ours, samples, strict=True))
    naive_delay = statistics.median(naive_polls(end) * NAIVE - end for end in samples)
    assert delay <= naive_delay, (delay, naive_delay)
    polls = statistics.mean(len(p) for p in ours)
    assert polls <= statistics.mean(naive_polls(end) for end in samples) / 2, polls


def test_waits_are_capped_for_very_long_tasks() -> None:
    schedule = Schedule(learned(spread(KEEP, 120, 300)), POLL)
    assert schedule.next_delay(3 * 3600) == 12 * POLL


def test_defaults_stand_in_until_enough_tasks_are_seen() -> None:
    few = RunTimes((30.0,) * (LEARNED_AFTER - 1), DEFAULT_PRIOR)
    assert not few.learned
    assert few.quantile(0.5) == pytest.approx(math.sqrt(DEFAULT_PRIOR.low * DEFAULT_PRIOR.high))
    enough = RunTimes((30.0,) * LEARNED_AFTER, DEFAULT_PRIOR)
    assert enough.learned and enough.quantile(0.5) == 30.0


def test_a_few_outliers_do_not_move_the_schedule() -> None:
    usual = bell(KEEP - 2, 60, 6)
    calm = Schedule(learned(usual), POLL).points
    shaken = Schedule(learned([*usual, 900.0, 1.0]), POLL).points
    assert abs(calm[-1] - shaken[-1]) < 3.0  # the last dense poll, the 95th percentile
    assert statistics.median(calm) == pytest.approx(statistics.median(shaken), abs=2.0)


def test_the_kind_separates_what_changes_the_time() -> None:
    base = kind("kie:kling-2.6/image-to-video", None, 5, False)
    assert base != kind("kie:kling-2.6/image-to-video", None, 10, False)
    assert base != kind("kie:kling-2.6/image-to-video", None, 5, True)
    assert base != kind("kie:kling-2.6/image-to-video", "pro", 5, False)
    assert base != kind("kling:kling-v2-6", None, 5, False)


async def test_what_is_learned_survives_a_restart_and_follows_the_provider(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bot.sqlite3"
    slow = task(duration=10)
    async with Database.open(path) as db:
        times = Timings(TimingRepository(db), POLL)
        await times.load()
        for seconds in bell(KEEP, 60, 6):
            await times.record(slow, seconds)
        assert times.of(slow).quantile(0.5) == pytest.approx(60, abs=1.5)
        assert not times.of(task(duration=5)).learned  # another kind learned nothing
    async with Database.open(path) as db:
        again = Timings(TimingRepository(db), POLL)
        await again.load()
        assert again.of(slow).samples == times.of(slow).samples
        # The provider gets twice as slow: the newest tasks take over.
        for seconds in bell(KEEP, 120, 12):
            await again.record(slow, seconds)
        assert again.of(slow).quantile(0.5) == pytest.approx(120, abs=3)
        rows = await db.fetchall("SELECT COUNT(*) FROM run_times")
        assert rows[0][0] == KEEP  # older samples are deleted, not piled up
    name = kind(slow.options.model, slow.options.mode, 10, False)
    read = await learned_times(path, name, POLL)  # the command line's read-only view
    assert read.samples == again.of(slow).samples


async def test_old_samples_are_forgotten(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "bot.sqlite3") as db:
        repository = TimingRepository(db)
        name = kind("kie:kling-2.6/image-to-video", None, 5, False)
        for _ in range(LEARNED_AFTER):
            await repository.add(name, 500.0, 1000.0, keep=KEEP, since=0.0)
        times = Timings(repository, POLL)
        await times.load()
        assert not times.of(task()).learned


async def test_the_command_line_reads_no_database_it_cannot_find(tmp_path: Path) -> None:
    read = await learned_times(tmp_path / "missing.sqlite3", "kie:x|-|5|-", POLL)
    assert not read.learned
    assert not (tmp_path / "missing.sqlite3").exists()


@pytest.mark.parametrize(
    ("lang", "age", "expected"),
    [
        ("en", 10, "⏱ About 50 s left."),
        ("en", 56, "⏱ Should be ready any moment."),
        ("en", 80, "⏱ Taking longer than usual; still waiting for it."),
        ("zh", 10, "⏱ 预计还需约 50 秒。"),
        ("zh", 56, "⏱ 马上就好。"),
        ("zh", 80, "⏱ 这次比平时慢，仍在等待。"),
    ],
)
def test_the_time_left_comes_from_the_learned_times(lang: str, age: float, expected: str) -> None:
    times = learned(bell(KEEP, 60, 6))
    assert eta(lang, times, age) == expected
    assert remaining(times, 10) == pytest.approx(50, abs=1)


def test_before_anything_is_learned_the_usual_range_is_shown() -> None:
    times = RunTimes((), DEFAULT_PRIOR)
    assert eta("en", times, 5) == "⏱ Usually takes 1 min–4 min."
    assert eta("zh", times, 5) == "⏱ 通常需要 1 分钟–4 分钟。"


def test_a_quick_kind_is_not_shown_as_a_range_of_one_figure() -> None:
    times = RunTimes((), Prior(1.8, 9.0))  # the defaults at POLL_INTERVAL = 0.3 s
    assert eta("en", times, 0) == "⏱ Usually takes 5 s–10 s."
    quick = RunTimes((), Prior(0.3, 1.5))
    assert eta("en", quick, 0) == "⏱ Usually takes about 5 s."
    assert eta("zh", quick, 0) == "⏱ 通常需要约 5 秒。"
