"""The issue's targets, judged from a benchmark's results."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bench.bigvideo import BigVideo
from bench.results import RunResult
from bench.stats import ratio
from bench.tick import TickCost

Verdict = Literal["met", "missed", "not shown"]
AT_ONCE = 1000
MAX_PROVIDER_CALLS = 3
MAX_CALLBACK_P99_MS = 50.0
MIN_POLL_RATIO = 5.0
MAX_DETECTION_SHARE = 0.10
MAX_TICK_GROWTH = 1.5
MAX_RSS_MB = 150.0
MAX_VIDEO_RISE_MB = 10.0
# Above this share of one core the bot's own queueing shows in every latency.
BUSY = 0.85
# A baseline that made fewer than this share of a punctual 5 s poller's polls fell behind.
LATE_BASELINE = 0.95


@dataclass(frozen=True)
class Target:
    """One target: what it asks, what the benchmark measured, and whether it holds."""

    goal: str
    measured: str
    verdict: Verdict


def _judge(ok: bool) -> Verdict:
    return "met" if ok else "missed"


def evaluate(
    results: Sequence[RunResult], ticks: Sequence[TickCost], big: BigVideo | None
) -> list[Target]:
    """Every target this run can show, in the issue's order."""
    real = [r for r in results if r.scenario.tracker == "real"]
    # Poll mode: the bot knows no callback will come (no PUBLIC_URL) and polls.
    polled = [r for r in results if not r.scenario.public_url]
    found = [
        _exactly_once(results),
        _provider_calls([r for r in real if r.scenario.callbacks]),
        _callback_latency([r for r in real if r.scenario.callbacks]),
        _poll_ratio(polled),
        _detection([r for r in polled if r.scenario.tracker == "real"]),
        _tick(ticks),
        _rss(real),
    ]
    if big is not None:
        found.append(_video(big))
    return [target for target in found if target is not None]


def _exactly_once(results: Sequence[RunResult]) -> Target:
    goal = f"{AT_ONCE:,} users at once: every one gets exactly one video"
    perfect = all(r.exactly_one == r.users for r in results)
    users = max((r.users for r in results), default=0)
    lost = sum(r.missing for r in results)
    doubled = sum(r.duplicates for r in results)
    wrong = sum(r.wrong_bytes for r in results)
    measured = (
        f"{len(results)} runs of {users:,} users: "
        f"{'every user got exactly one video' if perfect else 'NOT every user got one video'}"
        f" ({lost} missing, {doubled} duplicated, {wrong} with wrong bytes)"
    )
    if perfect and users < AT_ONCE:
        return Target(goal, measured + f"; not run with {AT_ONCE:,}", "not shown")
    return Target(goal, measured, _judge(perfect))


def _provider_calls(runs: Sequence[RunResult]) -> Target | None:
    if not runs:
        return None
    worst = max(runs, key=lambda r: r.provider_api_calls)
    calls = worst.provider_calls
    measured = (
        f"{worst.provider_api_calls:.1f} per task ({calls['upload']:.1f} upload, "
        f"{calls['create']:.1f} create, {calls['poll']:.1f} polls; {worst.scenario.mode})"
    )
    goal = f"with callbacks: ≤ {MAX_PROVIDER_CALLS} provider calls per task"
    return Target(goal, measured, _judge(worst.provider_api_calls <= MAX_PROVIDER_CALLS))


def _callback_latency(runs: Sequence[RunResult]) -> Target | None:
    if not runs:
        return None
    worst = max(runs, key=lambda r: r.latency_ms.p99)
    measured = ", ".join(
        f"{r.scenario.mode}: p50 {r.latency_ms.p50:.0f} / p99 {r.latency_ms.p99:.0f} ms"
        for r in runs
    )
    goal = f"callback → sendVideo p99 ≤ {MAX_CALLBACK_P99_MS:.0f} ms beyond the file transfer"
    return Target(goal, measured, _judge(worst.latency_ms.p99 <= MAX_CALLBACK_P99_MS))


def _poll_ratio(results: Sequence[RunResult]) -> Target | None:
    naive = [r for r in results if r.scenario.tracker == "naive"]
    real = [r for r in results if r.scenario.tracker == "real"]
    if not naive or not real:
        return None
    base = naive[0]
    ours = next((r for r in real if r.scenario.mode == base.scenario.mode), real[0])
    goal = f"poll mode: ≥ {MIN_POLL_RATIO:.0f}× fewer polls than the naive baseline (2–5 min tasks)"
    if math.isnan(base.polls_target) or math.isnan(ours.polls_target):
        return Target(goal, "no tasks of 2–5 minutes in this run", "not shown")
    overall = ratio(base.polls_target, ours.polls_target)
    by_minute = [
        f"{minute}–{minute + 1} min: {ratio(polls, ours.polls_by_minute[minute]):.1f}×"
        for minute, polls in base.polls_by_minute.items()
        if minute in ours.polls_by_minute
    ]
    measured = (
        f"{base.polls_target:.1f} naive vs {ours.polls_target:.1f} polls per task of 2–5 min: "
        f"{overall:.2f}× fewer ({', '.join(by_minute)})"
    )
    if base.busy > BUSY:
        measured += f"; the baseline was CPU-bound ({base.busy:.0%} of a core): its count is low"
    punctual = ours.punctual_naive_target
    if base.polls_target < LATE_BASELINE * punctual:
        measured += (
            f"; the baseline fell behind its 5 s period ({base.polls_target:.1f} polls where a "
            f"punctual one makes {punctual:.1f}): against a punctual one, "
            f"{ratio(punctual, ours.polls_target):.2f}× fewer"
        )
    return Target(goal, measured, _judge(overall >= MIN_POLL_RATIO))


def _detection(runs: Sequence[RunResult]) -> Target | None:
    if not runs:
        return None
    goal = f"poll mode: completion → detection ≤ {MAX_DETECTION_SHARE:.0%} of the task's age"
    shown = [r for r in runs if r.detection_share_target.count]
    if not shown:
        return Target(goal, "no tasks of 2–5 minutes in this run", "not shown")
    worst = max(shown, key=lambda r: r.detection_share_target.max)
    share = worst.detection_share_target
    measured = (
        f"tasks of 2–5 min: delay ÷ age p50 {share.p50:.1%}, p99 {share.p99:.1%}, "
        f"max {share.max:.1%} (delay p99 {worst.detection_s.p99:.1f} s real-life; "
        f"{worst.scenario.mode})"
    )
    if worst.busy > BUSY:
        measured += f"; the bot was CPU-bound ({worst.busy:.0%} of a core)"
    return Target(goal, measured, _judge(share.max <= MAX_DETECTION_SHARE))


def _tick(ticks: Sequence[TickCost]) -> Target | None:
    if not ticks:
        return None
    idle = sorted((t for t in ticks if t.due == 0), key=lambda t: t.waiting)
    busy = sorted((t for t in ticks if t.due > 0), key=lambda t: t.waiting)
    growth = max(ratio(ts[-1].p50_us, ts[0].p50_us) for ts in (idle, busy) if ts)
    measured = "; ".join(
        f"{ts[0].due} due: "
        + ", ".join(f"{t.p50_us:.0f} µs with {t.waiting:,} waiting" for t in ts)
        for ts in (idle, busy)
        if ts
    )
    goal = "tracker cost per tick flat in the number of tasks not due (10,000 waiting)"
    return Target(goal, measured, _judge(not math.isnan(growth) and growth <= MAX_TICK_GROWTH))


def _rss(runs: Sequence[RunResult]) -> Target | None:
    if not runs:
        return None
    fullest = max(runs, key=lambda r: (r.peak_inflight, r.peak_rss_mb))
    loaded = [r for r in runs if r.peak_inflight >= AT_ONCE]
    worst = max(loaded, key=lambda r: r.peak_rss_mb) if loaded else fullest
    measured = (
        f"peak RSS {worst.peak_rss_mb:.0f} MB with up to {worst.peak_inflight:,} tasks in flight "
        f"({worst.scenario.label})"
    )
    goal = f"peak RSS ≤ {MAX_RSS_MB:.0f} MB with {AT_ONCE:,} tasks in flight"
    if not loaded:
        return Target(goal, measured + f"; never {AT_ONCE:,} in flight", "not shown")
    return Target(goal, measured, _judge(worst.peak_rss_mb <= MAX_RSS_MB))


def _video(big: BigVideo) -> Target:
    goal = f"delivering a {big.size_mb:.0f} MB video raises RSS by ≤ {MAX_VIDEO_RISE_MB:.0f} MB"
    measured = (
        f"{big.before_mb:.0f} → {big.peak_mb:.0f} MB: +{big.rise_mb:.0f} MB"
        f"{'' if big.exact else ' (the video did NOT arrive intact)'}"
    )
    return Target(goal, measured, _judge(big.exact and big.rise_mb <= MAX_VIDEO_RISE_MB))
