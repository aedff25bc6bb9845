"""Turn what a run observed into the reported numbers."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.dbcost import DbReading, Statement
from bench.load import RawRun, Scenario
from bench.measure import MB
from bench.naive import PERIOD
from bench.stats import mean, percentile, ratio
from bench.users import Crowd

# Calls that set the bot up rather than serve a user.
SETUP_METHODS = frozenset(
    {"getMe", "getUpdates", "deleteWebhook", "setWebhook", "getWebhookInfo", "setMyCommands"}
)
# The poll targets are for tasks of 2–5 minutes (the fake's timer may end one late).
TARGET_AGES = (120.0, 310.0)
# What the fakes' requests are counted as (see BenchKie.kind and BenchKling.kind): "poll" is a
# status query about one task, "list" one about every task (Kling's list call), "lookup" a
# search by our external id.
PROVIDER_KINDS = ("upload", "create", "poll", "list", "lookup", "download")
# Status queries per second are read over windows this many real-life seconds long.
RATE_WINDOW = 10.0
# kie's create limit is counted over windows this many real-life seconds long (20 per 10 s).
CREATE_WINDOW = 10.0


@dataclass(frozen=True)
class Spread:
    """Percentiles of a sample (in the unit its name says)."""

    p50: float
    p95: float
    p99: float
    max: float
    count: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        """The spread of `values`."""
        return cls(
            percentile(values, 50),
            percentile(values, 95),
            percentile(values, 99),
            max(values) if values else math.nan,
            len(values),
        )


@dataclass(frozen=True)
class Wave:
    """How one wave of users was served: each must get exactly one video, the fake's bytes."""

    users: int
    exactly_one: int
    missing: int
    duplicates: int
    wrong_bytes: int

    @classmethod
    def of(cls, crowd: Crowd, video: bytes) -> Wave:
        """Count a crowd's videos."""
        people = list(crowd.people.values())
        counts = Counter(len(person.videos) for person in people)
        wrong = sum(
            1 for person in people for call in person.videos if call.files.get("video") != video
        )
        return cls(
            users=len(people),
            exactly_one=counts.get(1, 0) - wrong,
            missing=counts.get(0, 0),
            duplicates=sum(count for videos, count in counts.items() if videos > 1),
            wrong_bytes=wrong,
        )

    @property
    def perfect(self) -> bool:
        """Whether every user got exactly one right video."""
        return self.exactly_one == self.users


@dataclass
class RunResult:
    """The numbers reported for one run (its measured wave; the warm-up only in `warmup`)."""

    scenario: Scenario
    users: int
    exactly_one: int
    missing: int
    duplicates: int
    wrong_bytes: int
    creates: int
    makespan: float
    updates_per_s: float
    drafts_per_s: float
    creates_per_s: float
    draft_ms: Spread
    latency_ms: Spread
    # Completion → sendVideo in real-life seconds: the detection delay × K (the schedule's
    # wait, which the time scale shortens) plus detection → sendVideo as measured (the bot's
    # own work, which it does not).
    sent_s: Spread
    handling_ms: Spread
    detection_s: Spread
    detection_share: Spread
    detection_share_target: Spread
    polls_target: float
    punctual_naive_target: float
    provider_calls: dict[str, float]
    polls_by_minute: dict[int, float]
    telegram_calls: dict[str, float]
    peak_rss_mb: float
    rss_at_peak_inflight_mb: float
    peak_inflight: int
    cpu_per_task_ms: float
    cpu_total_s: float
    startup_rss_mb: float
    db_bytes: int
    db_bytes_closed: int
    bench_cpu_s: float
    bench_lag_ms: Spread
    busy: float
    problems: list[str] = field(default_factory=list)
    profile: Path | None = None
    warmup: Wave | None = None
    refused: int = 0  # status queries the provider refused for going over its limit
    # The most status requests (per-task queries and list calls) the provider received in any
    # RATE_WINDOW real-life seconds of the measured wave, per real-life second.
    peak_status_per_s: float = math.nan
    # Paid creates (create requests the provider received) per Generate pressed.
    creates_per_press: float = math.nan
    # The most creates the provider received in any CREATE_WINDOW real-life seconds.
    peak_creates: int = 0
    # The most Telegram calls to a chat (with a chat_id) in any real-life second.
    peak_telegram_per_s: float = math.nan
    # Each bot process's peak RSS, MB, and CPU per task of the wave, ms.
    process_peak_mb: list[float] = field(default_factory=list)
    process_cpu_ms: list[float] = field(default_factory=list)
    # The database's own work per task of the measured wave (size: bytes at the end).
    db: DbReading = field(default_factory=DbReading)
    webhook_retried: int = 0
    webhook_refused: int = 0
    top_statements: list[Statement] = field(default_factory=list)

    @property
    def provider_api_calls(self) -> float:
        """Upload + create + status requests per task (the download is a file transfer)."""
        return sum(self.provider_calls.get(kind, 0.0) for kind in ("upload", "create")) + (
            self.status_requests
        )

    @property
    def status_requests(self) -> float:
        """Status requests per task: per-task queries, plus list calls ÷ tasks."""
        return sum(self.provider_calls.get(kind, 0.0) for kind in ("poll", "list", "lookup"))

    @property
    def waves_perfect(self) -> bool:
        """Whether every user of both waves got exactly one video."""
        return self.exactly_one == self.users and (self.warmup is None or self.warmup.perfect)

    @property
    def telegram_total(self) -> float:
        """Telegram calls per task, setup excluded."""
        return sum(self.telegram_calls.values())


def summarize(raw: RawRun) -> RunResult:
    """The reported numbers of one run."""
    scenario, crowd, fake = raw.scenario, raw.crowd, raw.provider
    n = scenario.users
    k = scenario.time_scale
    people = list(crowd.people.values())
    t0 = crowd.started_at or 0.0
    wave = Wave.of(crowd, fake.video)
    draft_ms = [
        (person.draft_at - (person.pushed_at or t0)) * 1000
        for person in people
        if person.draft_at is not None
    ]
    to_wall = raw.clock_offset
    by_chat = {task.chat_id: task for task in raw.tasks}
    requests = fake.requests[raw.provider_mark :]
    # Per-task status queries, counted from the requests (Kling's list calls also raise a
    # task's `polls`, which would count one list call once per task it lists).
    polls_of = Counter(
        task_id for request in requests if (task_id := fake.polled_task(request)) is not None
    )
    latency, handling, detection, share, share_target, polls_target = [], [], [], [], [], []
    sent_s: list[float] = []
    punctual: list[int] = []
    polls_by_minute: dict[int, list[int]] = {}
    created: list[float] = []
    for person in people:
        task = by_chat.get(person.user.id)
        remote = fake.tasks.get(task.provider_task_id or "") if task else None
        if remote is None:
            continue
        created.append(remote.created - to_wall)
        if remote.completed is None:
            continue
        age = remote.completed - remote.created
        polls = polls_of[remote.task_id]
        minute = int(age * k // 60)
        polls_by_minute.setdefault(minute, []).append(polls)
        in_target = TARGET_AGES[0] <= age * k <= TARGET_AGES[1]
        if in_target:
            polls_target.append(polls)
            punctual.append(math.ceil(age * k / PERIOD))
        if not person.videos:
            continue
        sent = person.videos[0].at + to_wall
        latency.append((sent - remote.completed) * 1000)
        seen = fake.seen_done.get(remote.task_id)
        sent_s.append(
            (sent - remote.completed) * k
            if seen is None
            else max(0.0, seen - remote.completed) * k + (sent - seen)
        )
        if seen is not None:
            delay = max(0.0, seen - remote.completed)
            detection.append(delay * k)
            share.append(delay / age if age > 0 else math.nan)
            if in_target and age > 0:
                share_target.append(delay / age)
            handling.append((sent - seen) * 1000)
    provider = Counter(fake.kind(request) for request in requests)
    provider.pop(None, None)
    telegram = Counter(
        call.method
        for call in raw.telegram.calls[raw.telegram_mark :]
        if call.method not in SETUP_METHODS
    )
    drafts = [p.draft_at for p in people if p.draft_at is not None]
    acks = [p.acked_at for p in people if p.acked_at is not None]
    firsts = [p.videos[0].at for p in people if p.videos]
    presses = sum(1 for p in people if p.tapped_at is not None)
    # Telegram's ~30 per second is about messages to chats: calls that name a chat_id (PTB's
    # limiter, and the bot's shared one behind it, hold those; answerCallbackQuery has none).
    telegram_moments = [
        call.at
        for call in raw.telegram.calls[raw.telegram_mark :]
        if call.method not in SETUP_METHODS and "chat_id" in call.params
    ]
    return RunResult(
        scenario=scenario,
        users=n,
        exactly_one=wave.exactly_one,
        missing=wave.missing,
        duplicates=wave.duplicates,
        wrong_bytes=wave.wrong_bytes,
        creates=provider.get("create", 0),
        makespan=(max(firsts) - t0) if firsts else math.nan,
        updates_per_s=_rate(len(drafts) + len(acks), t0, acks),
        drafts_per_s=_rate(len(drafts), t0, drafts),
        creates_per_s=_rate(len(created), t0, created),
        draft_ms=Spread.of(draft_ms),
        latency_ms=Spread.of(latency),
        sent_s=Spread.of(sent_s),
        handling_ms=Spread.of(handling),
        detection_s=Spread.of(detection),
        detection_share=Spread.of([value for value in share if not math.isnan(value)]),
        detection_share_target=Spread.of(share_target),
        polls_target=mean(polls_target),
        punctual_naive_target=mean(punctual),
        provider_calls={kind: provider[kind] / n for kind in PROVIDER_KINDS},
        polls_by_minute={m: mean(polls) for m, polls in sorted(polls_by_minute.items())},
        telegram_calls={method: count / n for method, count in telegram.most_common()},
        peak_rss_mb=raw.end.hwm / MB,
        rss_at_peak_inflight_mb=raw.sampler.rss_at_peak_gauge / MB,
        peak_inflight=raw.sampler.peak_gauge,
        cpu_per_task_ms=(raw.end.cpu - raw.wave_start.cpu) / n * 1000,
        cpu_total_s=raw.end.cpu,
        startup_rss_mb=raw.ready.rss / MB,
        db_bytes=raw.db_bytes,
        db_bytes_closed=raw.db_bytes_closed,
        bench_cpu_s=raw.bench_cpu,
        bench_lag_ms=Spread.of([lag * 1000 for lag in raw.lag.lags]),
        busy=ratio(raw.at_served.cpu - raw.wave_start.cpu, raw.served_at - t0),
        problems=raw.problems,
        profile=raw.profile,
        warmup=Wave.of(raw.warm, fake.video) if raw.warm is not None else None,
        refused=fake.refused - raw.refused_mark,
        peak_status_per_s=peak_rate(fake.status_times[raw.status_mark :], RATE_WINDOW / k) / k,
        creates_per_press=provider.get("create", 0) / presses if presses else math.nan,
        peak_creates=round(peak_rate(created, CREATE_WINDOW / k) * CREATE_WINDOW / k)
        if created
        else 0,
        peak_telegram_per_s=peak_rate(telegram_moments, 1.0 / k) / k,
        process_peak_mb=[hwm / MB for hwm in raw.process_hwm],
        process_cpu_ms=[cpu / n * 1000 for cpu in raw.process_cpu],
        db=raw.db_end.minus(raw.db_start).per(n),
        webhook_retried=raw.webhook_retried,
        webhook_refused=raw.webhook_refused,
        top_statements=raw.top_statements,
    )


def peak_rate(moments: list[float], window: float) -> float:
    """The most of `moments` (seconds) in any `window` seconds, per second; NaN for none."""
    if not moments:
        return math.nan
    ordered = sorted(moments)
    most, first = 0, 0
    for last, moment in enumerate(ordered):
        while ordered[first] <= moment - window:
            first += 1
        most = max(most, last - first + 1)
    return most / window


def _rate(count: int, start: float, moments: list[float]) -> float:
    if not moments or max(moments) <= start:
        return math.nan
    return count / (max(moments) - start)
