"""`python -m bench.botproc`: the bot as `bot.app.run` runs it, with a tracker and a time scale.

The time scale divides the intervals that have no environment variable (progress edits, the
naive tracker's period, kie's create window) and multiplies Telegram's flood limit, so a run
is real life played K times faster. POLL_INTERVAL and TASK_TIMEOUT come scaled in the env.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any, ClassVar

from telegram.constants import FloodLimit
from telegram.ext import AIORateLimiter

import bot.app
from bench.naive import NaiveTracker
from bot.__main__ import configured
from bot.app import KlingBot
from bot.config import Settings
from bot.engine.messenger import PROGRESS_INTERVAL
from bot.engine.tracker import Tracker
from bot.providers.kie import KieProvider

TRACKERS: dict[str, type[Tracker]] = {"real": Tracker, "naive": NaiveTracker}


class ScaledRateLimiter(AIORateLimiter):
    """PTB's flood control with Telegram's overall limit raised by the time scale."""

    rate: ClassVar[float] = FloodLimit.MESSAGES_PER_SECOND

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(overall_max_rate=self.rate, **kwargs)


def apply_time_scale(scale: float) -> None:
    """Make the limits and intervals that only code sets `scale` times faster."""
    if scale == 1:
        return
    limit, window = KieProvider.create_rate or (20, 10.0)
    KieProvider.create_rate = (limit, window / scale)
    NaiveTracker.interval = NaiveTracker.interval / scale
    ScaledRateLimiter.rate = FloodLimit.MESSAGES_PER_SECOND * scale
    bot.app.AIORateLimiter = ScaledRateLimiter  # type: ignore[attr-defined,assignment]


async def run(settings: Settings, tracker: type[Tracker], progress_interval: float) -> None:
    """Run until SIGINT or SIGTERM, as `bot.app.run` does."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with KlingBot(settings, tracker_class=tracker, progress_interval=progress_interval):
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit status 2 when the configuration is incomplete."""
    parser = argparse.ArgumentParser(prog="python -m bench.botproc")
    parser.add_argument("--tracker", choices=sorted(TRACKERS), default="real")
    parser.add_argument("--time-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    settings = configured("bench.botproc")
    if settings is None:
        return 2
    apply_time_scale(args.time_scale)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(settings, TRACKERS[args.tracker], PROGRESS_INTERVAL / args.time_scale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
