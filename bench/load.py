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

from bench.dbcost import (
    STATS_ENV,
    BenchPostgres,
    DbReading,
    Statement,
    bench_postgres,
    sqlite_reading,
)
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
from storage import Task, TaskRepository, TaskState
from storage.database import open_database
from tests.fakes.server import serve
from tests.fakes.telegram import FakeTelegram

Mode = Literal["polling", "webhook"]
TrackerName = Literal["real", "naive"]
Backend = Literal["kie", "kling"]
# Which part of the benchmark a run belongs to: the load runs (2–5 min tasks, N users at
# once), the long-task scenario (2–5 min tasks, as many users as kie's status limit carries)
# or one of the learned-schedule scenarios (60 s ± 30 % tasks); each after a warm-up wave.
Group = Literal["load", "long", "kie-60", "kling-60", "replicas"]
GROUP_TITLES: dict[Group, str] = {
    "load": "load",
    "long": "long tasks: kie 2–5 min",
    "kie-60": "learned schedule: kie 60 s",
    "kling-60": "learned schedule: Kling 60 s",
    "replicas": "replicas",
}
# Where the bot keeps its data: the SQLite file (one process) or one PostgreSQL database
# shared by every replica (the benchmark's own server, see bench.dbcost).
Store = Literal["sqlite", "postgres"]
STARTED = "kling-bot started"
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
    # Bot processes sharing the database (more than one needs PostgreSQL).
    replicas: int = 1
    store: Store = "sqlite"

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
        if self.group == "replicas":
            return f"{self.processes} on {self.store_name}: {run}"
        return run if self.group == "load" else f"{GROUP_TITLES[self.group]}: {run}"

    @property
    def processes(self) -> str:
        """ "1 process", "3 processes"."""
        return f"{self.replicas} process{'es' if self.replicas > 1 else ''}"

    @property
    def store_name(self) -> str:
        """The database's name."""
        return "PostgreSQL" if self.store == "postgres" else "SQLite"

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
    # Of every bot process together: CPU and RSS added up, the highest VmHWM.
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
    webhook_retried: int = 0
    # Each bot process's VmHWM at the end, and its CPU seconds during the measured wave.
    process_hwm: list[int] = field(default_factory=list)
    process_cpu: list[float] = field(default_factory=list)
    # The database's own counts when the measured wave began and once it was served.
    db_start: DbReading = field(default_factory=DbReading)
    db_end: DbReading = field(default_factory=DbReading)
    problems_by_process: list[int] = field(default_factory=list)
    # PostgreSQL: the statements that took the most server time during the measured wave.
    top_statements: list[Statement] = field(default_factory=list)


def total(readings: list[Usage]) -> Usage:
    """Several processes as one: RSS and CPU added up, the highest peak."""
    return Usage(
        rss=sum(r.rss for r in readings),
        hwm=max((r.hwm for r in readings), default=0),
        cpu=sum(r.cpu for r in readings),
    )


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
    """The fakes and the bot processes of one run."""

    telegram: FakeTelegram
    provider: BenchProvider
    bots: list[BotProcess]
    database: Path
    pusher: WebhookPusher | None = None
    postgres: BenchPostgres | None = None
    stats: list[Path] = field(default_factory=list)  # where each SQLite bot writes its counts

    @property
    def bot(self) -> BotProcess:
        """The first bot process (the only one on SQLite)."""
        return self.bots[0]

    def usage(self) -> Usage:
        """Every bot process together."""
        return total([usage(bot.pid) for bot in self.bots])

    async def db_reading(self, reset: bool = False) -> DbReading:
        """The database's own counts now (`reset`: see BenchPostgres.reading)."""
        if self.postgres is not None:
            return await self.postgres.reading(reset)
        found = DbReading()
        for stats in self.stats:
            found = found.plus(sqlite_reading(stats, self.database))
        return found


@asynccontextmanager
async def world(
    scenario: Scenario,
    workdir: Path,
    telegram: FakeTelegram,
    video: bytes | None = None,
    postgres: BenchPostgres | None = None,
) -> AsyncIterator[World]:
    """Start the fakes and the bot (each replica, on `postgres` if given); stop the bots first
    and the fakes last."""
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
        database = workdir / "data" / "bot.sqlite3"
        env = {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": telegram_url,
            "DATABASE_PATH": str(database),
            "HTTP_HOST": "127.0.0.1",
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
        if postgres is not None:
            env["DATABASE_URL"] = postgres.url
        if scenario.mode == "webhook":
            env["TELEGRAM_WEBHOOK"] = "true"
        bots, stats = [], []
        for number in range(1, scenario.replicas + 1):
            # Each replica has its own web port, PUBLIC_URL (provider callbacks come back to
            # the replica that created the task) and folder (its log).
            folder = workdir if scenario.replicas == 1 else workdir / f"replica-{number}"
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
            port = free_port()
            own = dict(env, HTTP_PORT=str(port))
            # Webhook mode needs PUBLIC_URL, which also asks for callbacks; without callbacks
            # the fake then never sends them (callback_times = 0): every callback is lost.
            if scenario.public_url:
                own["PUBLIC_URL"] = f"http://127.0.0.1:{port}"
            if postgres is None:
                stats.append(folder / "dbstats.json")
                own[STATS_ENV] = str(stats[-1])
            bot = BotProcess(command(scenario.tracker, scenario.time_scale), own, folder)
            await bot.start()
            stack.push_async_callback(bot.stop)
            bots.append(bot)
        here = World(telegram, provider, bots, database, postgres=postgres, stats=stats)
        await _ready(here, scenario.mode)
        if scenario.mode == "webhook":
            hooks = telegram.calls_of("setWebhook")
            urls = list(dict.fromkeys(str(hook.params["url"]) for hook in hooks))
            secret = str(hooks[-1].params["secret_token"])
            # Telegram's retries are spaced by seconds; here a short pause, time-scaled.
            here.pusher = WebhookPusher(urls, secret, retry_delay=scenario.scaled(0.5))
            stack.push_async_callback(here.pusher.aclose)
        yield here


async def _ready(here: World, mode: Mode) -> None:
    """Until every replica has started (and, in webhook mode, set its webhook) and one of
    them polls (polling mode)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        for bot in here.bots:
            if not bot.running:
                raise RuntimeError(f"the bot exited at start; see {bot.log_path}")
        if mode == "polling":
            ready = bool(here.telegram.calls_of("getUpdates"))
        else:
            urls = {str(call.params.get("url")) for call in here.telegram.calls_of("setWebhook")}
            ready = len(urls) >= len(here.bots)
        if ready and (len(here.bots) == 1 or all(bot.said(STARTED) for bot in here.bots)):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bot did not start in {READY_TIMEOUT:.0f} s")
        await asyncio.sleep(0.005)


async def read_tasks(database: Path, url: str | None = None) -> list[Task]:
    """Every task in the bot's database (read after the bot stopped): PostgreSQL at `url`,
    else the SQLite file."""
    async with open_database(url, database) as db:
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
        postgres = None
        if scenario.store == "postgres":
            say("  starting PostgreSQL…")
            postgres = await stack.enter_async_context(bench_postgres())
        here = await stack.enter_async_context(
            world(scenario, workdir, telegram, postgres=postgres)
        )
        await stack.enter_async_context(alongside(lag.run()))
        ready = here.usage()
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
        starts = [usage(bot.pid) for bot in here.bots]
        wave_start = total(starts)
        db_start = await here.db_reading(reset=True)
        sampler = Sampler(here.bot.pid, gauge=crowd.in_flight)
        bench_start = own_cpu()
        profiler = Profiler(here.bot.pid, profile) if profile else None
        if profiler is not None:
            await profiler.start()
        async with alongside(sampler.run()), alongside(crowd.watch()):
            crowd.begin(here.pusher, start_at)
            say(f"  {scenario.users} users at once; waiting for every video…")
            served = await crowd.wait_served(scenario.budget())
            at_served, served_at = here.usage(), time.monotonic()
            # Late duplicates (a second poll, a repeated callback) would show up within this.
            await asyncio.sleep(max(1.0, 3 * scenario.scaled(POLL_INTERVAL)))
            crowd.scan()
            if warm is not None:
                warm.scan()
        ends = [usage(bot.pid) for bot in here.bots]
        end = total(ends)
        db_end = await here.db_reading()
        top = await postgres.top() if postgres is not None else []
        if profiler is not None:
            await profiler.stop()
        bench_cpu = own_cpu() - bench_start
        db_bytes = db_size(here.database) if postgres is None else int(db_end.size)
        refused = here.pusher.refused if here.pusher else 0
        retried = here.pusher.retried if here.pusher else 0
        for bot in here.bots:
            await bot.stop()
        found = [bot.problems() for bot in here.bots]
        problems = [line for lines in found for line in lines]
        tasks = await read_tasks(here.database, postgres.url if postgres else None)
        closed = db_size(here.database) if postgres is None else int(db_end.size)
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
            db_bytes_closed=closed,
            all_served=served,
            problems=problems,
            webhook_refused=refused,
            profile=profile,
            warm=warm,
            provider_mark=provider_mark,
            telegram_mark=telegram_mark,
            refused_mark=refused_mark,
            status_mark=status_mark,
            webhook_retried=retried,
            process_hwm=[u.hwm for u in ends],
            process_cpu=[e.cpu - s.cpu for s, e in zip(starts, ends, strict=True)],
            db_start=db_start,
            db_end=db_end,
            problems_by_process=[len(lines) for lines in found],
            top_statements=top,
        )
