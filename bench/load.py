"""One load run: fakes on loopback, the bot as a process, N users at once; raw measurements."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.fakes import (
    KIE_KEY,
    KLING_ACCESS_KEY,
    KLING_SECRET_KEY,
    TOKEN,
    BenchKie,
    BenchKling,
    BenchProvider,
    Shape,
    TaskTimes,
    WebhookPusher,
    memoize_thumbnails,
    photo,
)
from bench.measure import LoopLag, Sampler, Usage, own_cpu, usage
from bench.process import BotProcess, command
from bench.profile import Profiler
from bench.users import WARMUP_FIRST_ID, Crowd
from bot.background import alongside
from storage import Database, Task, TaskRepository, TaskState
from tests.fakes.server import serve
from tests.fakes.telegram import FakeTelegram

Mode = Literal["polling", "webhook"]
TrackerName = Literal["real", "naive"]
Backend = Literal["kie", "kling"]
# Which part of the benchmark a run belongs to: the load runs (2–5 min tasks, N users at
# once), the long-task scenario (2–5 min tasks, as many users as kie's status limit carries)
# or one of the learned-schedule scenarios (60 s ± 30 % tasks); each after a warm-up wave.
Group = Literal["load", "long", "kie-60", "kling-60"]
GROUP_TITLES: dict[Group, str] = {
    "load": "load",
    "long": "long tasks: kie 2–5 min",
    "kie-60": "learned schedule: kie 60 s",
    "kling-60": "learned schedule: Kling 60 s",
}
# The official Kling model the Kling runs' users generate with (the catalogue's first).
KLING_MODEL = "kling:kling-v2-6"

POLL_INTERVAL = 10.0
TASK_TIMEOUT = 1200.0
KIE_CREATES_PER_S = 2.0  # kie takes 20 new tasks per 10 s
READY_TIMEOUT = 60.0
PHOTO = photo()


@dataclass(frozen=True)
class Scenario:
    """What one run does; times are real-life seconds, played `time_scale` times faster."""

    users: int = 1000
    task_seconds: tuple[float, float] = (120.0, 300.0)
    callbacks: bool = True
    mode: Mode = "polling"
    tracker: TrackerName = "real"
    time_scale: float = 5.0
    task_shape: Shape = "even"
    backend: Backend = "kie"
    # Users of a first wave the bot serves (and learns from) before the measured one.
    warmup: int = 0
    group: Group = "load"

    @property
    def times(self) -> TaskTimes:
        """The fake provider's task times, in real-life seconds."""
        return TaskTimes(self.task_seconds[0], self.task_seconds[1], self.task_shape)

    @property
    def public_url(self) -> bool:
        """Whether the bot gets PUBLIC_URL (callbacks asked for; webhook mode needs it too)."""
        return self.callbacks or self.mode == "webhook"

    @property
    def hooks(self) -> str:
        """How tasks end: by callback, by poll, or by poll although a callback was asked for."""
        if self.callbacks:
            return "callbacks"
        return "callbacks lost" if self.public_url else "polls only"

    @property
    def label(self) -> str:
        """A short name for tables."""
        run = f"{self.mode}, {self.hooks}, {self.tracker} tracker"
        return run if self.group == "load" else f"{GROUP_TITLES[self.group]}: {run}"

    def scaled(self, seconds: float) -> float:
        """A real-life duration as this run plays it."""
        return seconds / self.time_scale

    def budget(self, users: int | None = None) -> float:
        """Wall seconds after which a wave of `users` (the measured one) gets no more time."""
        intake = (self.users if users is None else users) / (KIE_CREATES_PER_S * self.time_scale)
        return 60.0 + 3 * (intake + self.scaled(self.task_seconds[1]))


@dataclass
class RawRun:
    """What a run observed; `results.summarize` turns it into the reported numbers."""

    scenario: Scenario
    telegram: FakeTelegram
    provider: BenchProvider
    crowd: Crowd
    tasks: list[Task]
    clock_offset: float  # time.time() - time.monotonic() in this process
    ready: Usage
    wave_start: Usage  # when the measured wave began (after the warm-up, if any)
    at_served: Usage
    served_at: float
    end: Usage
    sampler: Sampler
    lag: LoopLag
    bench_cpu: float
    db_bytes: int
    db_bytes_closed: int
    all_served: bool
    problems: list[str] = field(default_factory=list)
    webhook_refused: int = 0
    profile: Path | None = None
    warm: Crowd | None = None
    # Where the measured wave's requests begin in the provider's and Telegram's logs.
    provider_mark: int = 0
    telegram_mark: int = 0
    refused_mark: int = 0
    status_mark: int = 0


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def db_size(path: Path) -> int:
    """Bytes of the database with its WAL and shared-memory files."""
    return sum(
        candidate.stat().st_size
        for candidate in (
            path,
            path.with_name(path.name + "-wal"),
            path.with_name(path.name + "-shm"),
        )
        if candidate.exists()
    )


@dataclass
class World:
    """The fakes and the bot process of one run."""

    telegram: FakeTelegram
    provider: BenchProvider
    bot: BotProcess
    database: Path
    pusher: WebhookPusher | None = None


@asynccontextmanager
async def world(
    scenario: Scenario, workdir: Path, telegram: FakeTelegram, video: bytes | None = None
) -> AsyncIterator[World]:
    """Start the fakes and the bot; stop the bot first and the fakes last."""
    times = scenario.times.scaled(scenario.time_scale)
    async with AsyncExitStack() as stack:
        provider: BenchProvider
        if scenario.backend == "kling":
            provider = await stack.enter_async_context(BenchKling(times))
        else:
            provider = await stack.enter_async_context(
                BenchKie(times, scenario.time_scale, api_key=KIE_KEY)
            )
        provider.callback_times = 1 if scenario.callbacks else 0
        if video is not None:
            provider.video = video
        telegram_url = await stack.enter_async_context(serve(telegram.app))
        stack.callback(telegram.shutdown)
        provider_url = await stack.enter_async_context(serve(provider.app))
        port = free_port()
        database = workdir / "data" / "bot.sqlite3"
        env = {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": telegram_url,
            "DATABASE_PATH": str(database),
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(port),
            "POLL_INTERVAL": repr(scenario.scaled(POLL_INTERVAL)),
            "TASK_TIMEOUT": repr(scenario.scaled(TASK_TIMEOUT)),
            "PREVIEW_BACKEND": "false",
        }
        if scenario.backend == "kling":
            env.update(
                KLING_ACCESS_KEY=KLING_ACCESS_KEY,
                KLING_SECRET_KEY=KLING_SECRET_KEY,
                KLING_API_URL=provider_url,
                DEFAULT_MODEL=KLING_MODEL,
            )
        else:
            env.update(KIE_API_KEY=KIE_KEY, KIE_API_URL=provider_url, KIE_UPLOAD_URL=provider_url)
        # Webhook mode needs PUBLIC_URL, which also asks for callbacks; without callbacks the
        # fake then never sends them (callback_times = 0): every callback is lost.
        if scenario.public_url:
            env["PUBLIC_URL"] = f"http://127.0.0.1:{port}"
        if scenario.mode == "webhook":
            env["TELEGRAM_WEBHOOK"] = "true"
        bot = BotProcess(command(scenario.tracker, scenario.time_scale), env, workdir)
        await bot.start()
        stack.push_async_callback(bot.stop)
        here = World(telegram, provider, bot, database)
        await _ready(here, scenario.mode)
        if scenario.mode == "webhook":
            hook = telegram.calls_of("setWebhook")[-1]
            here.pusher = WebhookPusher(str(hook.params["url"]), str(hook.params["secret_token"]))
            stack.push_async_callback(here.pusher.aclose)
        yield here


async def _ready(here: World, mode: Mode) -> None:
    method = "getUpdates" if mode == "polling" else "setWebhook"
    deadline = time.monotonic() + READY_TIMEOUT
    while not here.telegram.calls_of(method):
        if not here.bot.running:
            raise RuntimeError(f"the bot exited at start; see {here.bot.log_path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bot did not start in {READY_TIMEOUT:.0f} s")
        await asyncio.sleep(0.005)


async def read_tasks(database: Path) -> list[Task]:
    """Every task in the bot's database (read after the bot stopped)."""
    async with Database.open(database) as db:
        return await TaskRepository(db).in_states(*TaskState)


async def run(
    scenario: Scenario,
    workdir: Path,
    say: Callable[[str], None] = print,
    profile: Path | None = None,
) -> RawRun:
    """Run one scenario end to end and return what was observed (py-spy samples to `profile`).

    With a warm-up, its users write first and are served first by the same bot process (same
    database, so the bot has learned from their tasks); the measured users write once every
    warm-up user has a video. The two waves have separate user ids; only the measured one is
    reported, but both must get exactly one video each.
    """
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    lag = LoopLag()
    memoize_thumbnails()
    # Webhook mode: the bot listens on plain HTTP on loopback (production puts TLS in front).
    telegram = FakeTelegram(token=TOKEN, allow_loopback_http_webhook=True)
    warm = Crowd(telegram, scenario.warmup, PHOTO, WARMUP_FIRST_ID) if scenario.warmup else None
    crowd = Crowd(telegram, scenario.users, PHOTO)
    # The first wave writes while the bot is still down: it then finds them all at once.
    (warm or crowd).write()
    async with AsyncExitStack() as stack:
        here = await stack.enter_async_context(world(scenario, workdir, telegram))
        await stack.enter_async_context(alongside(lag.run()))
        ready = usage(here.bot.pid)
        first_poll = telegram.calls_of("getUpdates")[0].at if here.pusher is None else None
        start_at: float | None = first_poll
        if warm is not None:
            await stack.enter_async_context(alongside(warm.watch()))
            warm.begin(here.pusher, first_poll)
            say(f"  warm-up: {scenario.warmup} users; waiting for their videos…")
            if not await warm.wait_served(scenario.budget(scenario.warmup)):
                say(f"  warm-up: only {warm.served} of {scenario.warmup} served; going on")
            # The last deliveries' bookkeeping (what the bot learns) settles meanwhile.
            await asyncio.sleep(max(0.5, scenario.scaled(POLL_INTERVAL)))
            crowd.write()
            start_at = None
        provider_mark, telegram_mark = len(here.provider.requests), len(telegram.calls)
        refused_mark = here.provider.refused
        status_mark = len(here.provider.status_times)
        wave_start = usage(here.bot.pid)
        sampler = Sampler(here.bot.pid, gauge=crowd.in_flight)
        bench_start = own_cpu()
        profiler = Profiler(here.bot.pid, profile) if profile else None
        if profiler is not None:
            await profiler.start()
        async with alongside(sampler.run()), alongside(crowd.watch()):
            crowd.begin(here.pusher, start_at)
            say(f"  {scenario.users} users at once; waiting for every video…")
            served = await crowd.wait_served(scenario.budget())
            at_served, served_at = usage(here.bot.pid), time.monotonic()
            # Late duplicates (a second poll, a repeated callback) would show up within this.
            await asyncio.sleep(max(1.0, 3 * scenario.scaled(POLL_INTERVAL)))
            crowd.scan()
            if warm is not None:
                warm.scan()
        end = usage(here.bot.pid)
        if profiler is not None:
            await profiler.stop()
        bench_cpu = own_cpu() - bench_start
        db_bytes = db_size(here.database)
        refused = here.pusher.refused if here.pusher else 0
        await here.bot.stop()
        problems = here.bot.problems()
        tasks = await read_tasks(here.database)
        return RawRun(
            scenario=scenario,
            telegram=here.telegram,
            provider=here.provider,
            crowd=crowd,
            tasks=tasks,
            clock_offset=time.time() - time.monotonic(),
            ready=ready,
            wave_start=wave_start,
            at_served=at_served,
            served_at=served_at,
            end=end,
            sampler=sampler,
            lag=lag,
            bench_cpu=bench_cpu,
            db_bytes=db_bytes,
            db_bytes_closed=db_size(here.database),
            all_served=served,
            problems=problems,
            webhook_refused=refused,
            profile=profile,
            warm=warm,
            provider_mark=provider_mark,
            telegram_mark=telegram_mark,
            refused_mark=refused_mark,
            status_mark=status_mark,
        )
