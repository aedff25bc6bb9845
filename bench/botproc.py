"""`python -m bench.botproc`: the bot as `bot.app.run` runs it, with a tracker and a time scale.

The time scale divides the intervals that have no environment variable (progress edits, the
naive tracker's period, the windows of the providers' request limits and of Telegram's
flood limits), so a run is real life played K times faster. POLL_INTERVAL and
TASK_TIMEOUT come scaled in the env (and with them what the bot counts in POLL_INTERVALs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import bot.chat.limiter as flood
from bench.dbcost import STATS_ENV, STATS_PERIOD, SqliteCounter, install_sqlite_counter
from bench.naive import NaiveTracker
from bot.__main__ import configured
from bot.app import KlingBot
from bot.chat.messenger import PROGRESS_INTERVAL
from bot.config import Settings
from bot.engine.tracker import Tracker
from bot.providers.base import Provider

TRACKERS: dict[str, type[Tracker]] = {"real": Tracker, "naive": NaiveTracker}


def apply_time_scale(scale: float) -> list[str]:
    """Make the limits and intervals that only code sets `scale` times faster; say which."""
    if scale == 1:
        return []
    NaiveTracker.interval = NaiveTracker.interval / scale
    # Read when each process builds its limiter, one process's gate or the replicas' slots.
    limit, window = flood.OVERALL_RATE
    flood.OVERALL_RATE = (limit, window / scale)
    group, period = flood.GROUP_RATE
    flood.GROUP_RATE = (group, period / scale)
    said = [
        f"Telegram's overall flood limit {limit} per {window / scale:g} s, "
        f"{group} per {period / scale:g} s per group (one process's, and the replicas' slots)"
    ]
    return said + _scale_rates(scale)


def _providers(top: type[Provider] = Provider) -> list[type[Provider]]:
    found = []
    for sub in top.__subclasses__():
        found += [sub, *_providers(sub)]
    return found


def _scale_rates(scale: float) -> list[str]:
    """Every provider's request limits `(requests, seconds)`: the same count per window
    `scale` times shorter. They are the provider classes' attributes named `*_rate`
    (`create_rate`, kie's `status_rate`, …) and their modules' constants named `*_RATE`."""
    scaled = []
    modules = {provider.__module__ for provider in _providers()}
    owners: list[Any] = [*_providers(), *(sys.modules[name] for name in sorted(modules))]
    for owner in owners:
        for name, value in list(vars(owner).items()):
            if name.lower().endswith("_rate") and _is_rate(value):
                setattr(owner, name, (value[0], value[1] / scale))
                scaled.append(f"{owner.__name__}.{name} = {value[0]} per {value[1] / scale:g} s")
    return scaled


def _is_rate(value: object) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(part, int | float) and not isinstance(part, bool) for part in value)
    )


async def run(
    settings: Settings,
    tracker: type[Tracker],
    progress_interval: float,
    counter: SqliteCounter | None = None,
    stats: Path | None = None,
) -> None:
    """Run until SIGINT or SIGTERM, as `bot.app.run` does; keep writing the SQLite counts to
    `stats` meanwhile (see bench.dbcost)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with KlingBot(settings, tracker_class=tracker, progress_interval=progress_interval):
        if counter is None or stats is None:
            await stop.wait()
            return
        while not stop.is_set():
            counter.write(stats)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STATS_PERIOD)
        counter.write(stats)


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit status 2 when the configuration is incomplete."""
    parser = argparse.ArgumentParser(prog="python -m bench.botproc")
    parser.add_argument("--tracker", choices=sorted(TRACKERS), default="real")
    parser.add_argument("--time-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    settings = configured("bench.botproc")
    if settings is None:
        return 2
    for line in apply_time_scale(args.time_scale):
        print(f"bench.botproc: time scale ×{args.time_scale:g}: {line}", file=sys.stderr)
    stats = os.environ.get(STATS_ENV)
    counter = install_sqlite_counter() if stats else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run(
                settings,
                TRACKERS[args.tracker],
                PROGRESS_INTERVAL / args.time_scale,
                counter,
                Path(stats) if stats else None,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
