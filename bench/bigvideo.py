"""How much a big video's delivery raises the bot's memory."""

from __future__ import annotations

import asyncio
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from bench.fakes import TOKEN, memoize_thumbnails
from bench.load import PHOTO, Scenario, world
from bench.measure import MB, Sampler, reset_peak, usage
from bench.users import FIRST_USER_ID, Crowd
from tests.fakes.telegram import FakeTelegram

# A real-time run (`python -m bot` itself) with callbacks: the task ends in two seconds.
SCENARIO = Scenario(users=1, task_seconds=(2.0, 2.0), callbacks=True, time_scale=1.0)
TIMEOUT = 120.0


@dataclass(frozen=True)
class BigVideo:
    """RSS before and at the peak of one delivery of a `size_mb` video (after a warm-up one)."""

    size_mb: float
    before_mb: float
    peak_mb: float
    delivered: bool
    exact: bool
    peak_reset: bool

    @property
    def rise_mb(self) -> float:
        """How much the delivery raised RSS."""
        return self.peak_mb - self.before_mb


async def measure(size_mb: float, workdir: Path) -> BigVideo:
    """Deliver one small video (warm-up), then one of `size_mb`; watch the bot's RSS."""
    memoize_thumbnails()
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    telegram = FakeTelegram(token=TOKEN)
    warm = Crowd(telegram, 1, PHOTO)
    warm.write()
    async with world(SCENARIO, workdir, telegram) as here:
        warm.begin(None)
        watcher = asyncio.create_task(warm.watch())
        if not await warm.wait_served(TIMEOUT):
            raise RuntimeError("the warm-up video never arrived")
        watcher.cancel()
        await asyncio.sleep(1.0)  # let the warm-up delivery finish its bookkeeping
        pid = here.bot.pid
        big = os.urandom(int(size_mb * MB))
        here.provider.video = big
        before = statistics.median(usage(pid).rss for _ in range(5))
        reset = reset_peak(pid)
        crowd = Crowd(telegram, 1, PHOTO, first_id=FIRST_USER_ID + 1)
        sampler = Sampler(pid, period=0.005)
        sampling = asyncio.create_task(sampler.run())
        watcher = asyncio.create_task(crowd.watch())
        crowd.write()
        crowd.begin(None)
        delivered = await crowd.wait_served(TIMEOUT)
        await asyncio.sleep(1.0)  # the answer to sendVideo and the last status edits
        sampling.cancel()
        watcher.cancel()
        peak = max(sampler.peak_rss, usage(pid).hwm if reset else 0)
        videos = [call for person in crowd.people.values() for call in person.videos]
        exact = len(videos) == 1 and videos[0].files.get("video") == big
        return BigVideo(size_mb, before / MB, peak / MB, delivered, exact, reset)
