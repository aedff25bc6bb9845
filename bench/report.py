"""Print the results and write them to docs/benchmarks.md."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.bigvideo import BigVideo
from bench.profile import hotspots, top_inclusive
from bench.results import RunResult, Spread
from bench.stats import ratio
from bench.targets import Target
from bench.tick import TickCost

Row = tuple[str, Callable[[RunResult], str]]
MINUTES = (2, 3, 4)
# Frames worth naming in a profile: where the bot's time goes, by what it is doing.
FRAMES = {
    "Tracker._poll": "_poll (bot/engine/tracker.py",
    "provider fetch (poll)": "fetch (bot/providers/kie.py",
    "Messenger.progress/show (status edits)": "_status (bot/chat/messenger.py",
    "Deliverer.deliver": "deliver (bot/engine/deliver.py",
    "Submitter.submit": "submit (bot/engine/submit.py",
    "PTB process_update (handlers)": "process_update (telegram/ext/_application.py",
    "httpcore current_async_library (failed import of sniffio)": "current_async_library",
    "aiosqlite calls": "aiosqlite/core.py",
}


@dataclass(frozen=True)
class Context:
    """Where and how the benchmark ran."""

    date: str
    command: str
    commit: str
    machine: dict[str, str]
    parameters: dict[str, str]
    note: str = ""


def _f(value: float, digits: int = 0) -> str:
    return "–" if math.isnan(value) else f"{value:,.{digits}f}"


def _by_callback(r: RunResult) -> str:
    if not r.scenario.callbacks:
        return "–"
    return f"{_f(r.latency_ms.p50)} / {_f(r.latency_ms.p95)} / {_f(r.latency_ms.p99)}"


def _by_poll(r: RunResult) -> str:
    if r.scenario.callbacks:
        return "–"
    k = r.scenario.time_scale / 1000  # ms → real-life s
    return f"{_f(r.latency_ms.p50 * k, 1)} / {_f(r.latency_ms.p95 * k, 1)} / " + _f(
        r.latency_ms.p99 * k, 1
    )


def _minutes(r: RunResult) -> str:
    return " / ".join(_f(r.polls_by_minute.get(m, math.nan), 1) for m in MINUTES)


def _wave(r: RunResult) -> str:
    warm = r.warmup
    shown = f"{r.exactly_one:,} / {r.users:,}"
    return shown if warm is None else f"{shown} ({warm.exactly_one} / {warm.users})"


ROWS: list[Row] = [
    ("users with exactly one video (warm-up wave)", _wave),
    ("missing / duplicated videos", lambda r: f"{r.missing} / {r.duplicates}"),
    ("first photo → last video, s", lambda r: _f(r.makespan, 1)),
    ("intake: updates handled per s", lambda r: _f(r.updates_per_s)),
    (
        "intake: the same in real life (÷ K), per s",
        lambda r: _f(r.updates_per_s / r.scenario.time_scale, 1),
    ),
    ("intake: drafts sent per s", lambda r: _f(r.drafts_per_s)),
    ("kie creates per s", lambda r: _f(r.creates_per_s, 1)),
    ("photo → draft p50 / p99, ms", lambda r: f"{_f(r.draft_ms.p50)} / {_f(r.draft_ms.p99)}"),
    ("completion → sendVideo by callback p50 / p95 / p99, ms", _by_callback),
    ("completion → sendVideo by poll p50 / p95 / p99, real-life s", _by_poll),
    (
        "completion → detection p50 / p95 / p99, real-life s",
        lambda r: (
            f"{_f(r.detection_s.p50, 1)} / {_f(r.detection_s.p95, 1)} / {_f(r.detection_s.p99, 1)}"
        ),
    ),
    (
        "detection delay ÷ task age p50 / p99 / max, %",
        lambda r: (
            f"{_f(r.detection_share.p50 * 100, 1)} / {_f(r.detection_share.p99 * 100, 1)}"
            f" / {_f(r.detection_share.max * 100, 1)}"
        ),
    ),
    (
        "detection → sendVideo p50 / p99, ms",
        lambda r: f"{_f(r.handling_ms.p50)} / {_f(r.handling_ms.p99)}",
    ),
    (
        "provider calls per task: upload / create / polls",
        lambda r: (
            f"{_f(r.provider_calls['upload'], 2)} / {_f(r.provider_calls['create'], 2)}"
            f" / {_f(r.status_requests, 1)}"
        ),
    ),
    ("polls per task, tasks of 2–3 / 3–4 / 4–5 min", _minutes),
    (
        "status queries per real-life s, peak over 10 s / refused",
        lambda r: f"{_f(r.peak_status_per_s, 1)} / {r.refused}",
    ),
    ("video downloads per task", lambda r: _f(r.provider_calls["download"], 2)),
    (
        "Telegram calls per task (of which edits)",
        lambda r: (
            f"{_f(r.telegram_total, 1)} ({_f(r.telegram_calls.get('editMessageText', 0), 1)})"
        ),
    ),
    ("peak RSS (VmHWM), MB", lambda r: _f(r.peak_rss_mb, 1)),
    (
        "most tasks in flight / RSS then, MB",
        lambda r: f"{r.peak_inflight:,} / {_f(r.rss_at_peak_inflight_mb, 1)}",
    ),
    ("CPU per task, ms", lambda r: _f(r.cpu_per_task_ms, 1)),
    ("bot CPU while serving, % of one core", lambda r: _f(r.busy * 100)),
    (
        "database with WAL / closed, MB",
        lambda r: f"{_f(r.db_bytes / 1e6, 1)} / {_f(r.db_bytes_closed / 1e6, 2)}",
    ),
    (
        "benchmark's own loop lag p99 / max, ms",
        lambda r: f"{_f(r.bench_lag_ms.p99, 1)} / {_f(r.bench_lag_ms.max)}",
    ),
    ("errors in the bot's log", lambda r: str(len(r.problems))),
]

RATIOS: list[tuple[str, Callable[[RunResult], float]]] = [
    ("polls per task", lambda r: r.status_requests),
    ("provider calls per task", lambda r: r.provider_api_calls),
    ("Telegram calls per task", lambda r: r.telegram_total),
    ("CPU per task", lambda r: r.cpu_per_task_ms),
    ("peak RSS", lambda r: r.peak_rss_mb),
    ("completion → detection p50", lambda r: r.detection_s.p50),
    ("completion → detection p95", lambda r: r.detection_s.p95),
    ("completion → sendVideo p99", lambda r: r.latency_ms.p99),
]


def _three(spread: Spread, digits: int = 1, scale: float = 1.0) -> str:
    return " / ".join(_f(v * scale, digits) for v in (spread.p50, spread.p95, spread.max))


def _calls(r: RunResult) -> str:
    c = r.provider_calls
    return (
        f"{_f(c.get('list', 0.0), 2)} / {_f(c.get('poll', 0.0), 2)}"
        f"{' + ' + _f(c['lookup'], 2) + ' lookups' if c.get('lookup') else ''}"
    )


# The learned-schedule scenarios' table: a row, and what its ratio naive ÷ ours compares.
LearnedRow = tuple[str, Callable[[RunResult], str], Callable[[RunResult], float] | None]
LEARNED_ROWS: list[LearnedRow] = [
    ("users with exactly one video (warm-up wave)", _wave, None),
    (
        "completion → sendVideo p50 / p95 / max, real-life s (delay × K + handling)",
        lambda r: _three(r.sent_s, 2),
        lambda r: r.sent_s.p50,
    ),
    (
        "completion → detection p50 / p95 / max, real-life s",
        lambda r: _three(r.detection_s, 2),
        lambda r: r.detection_s.p50,
    ),
    (
        "detection delay ÷ task age p50 / p95 / max, %",
        lambda r: _three(r.detection_share, 1, 100),
        None,
    ),
    ("status requests per task", lambda r: _f(r.status_requests, 2), lambda r: r.status_requests),
    ("… list calls ÷ tasks / per-task queries ÷ tasks", _calls, None),
    ("status queries the provider refused (over its limit)", lambda r: str(r.refused), None),
    (
        "status queries per real-life second, peak over 10 s",
        lambda r: _f(r.peak_status_per_s, 1),
        None,
    ),
    (
        "provider calls per task (upload, create, status)",
        lambda r: _f(r.provider_api_calls, 2),
        lambda r: r.provider_api_calls,
    ),
    (
        "Telegram calls per task (of which edits)",
        lambda r: (
            f"{_f(r.telegram_total, 1)} ({_f(r.telegram_calls.get('editMessageText', 0), 1)})"
        ),
        lambda r: r.telegram_total,
    ),
    ("CPU per task, ms", lambda r: _f(r.cpu_per_task_ms, 1), lambda r: r.cpu_per_task_ms),
    ("bot CPU while serving, % of one core", lambda r: _f(r.busy * 100), None),
    ("peak RSS (VmHWM), MB", lambda r: _f(r.peak_rss_mb, 1), lambda r: r.peak_rss_mb),
    ("first photo → last video, s", lambda r: _f(r.makespan, 1), None),
    ("errors in the bot's log", lambda r: str(len(r.problems)), None),
]
# More rows for the long-task scenario: the tasks of 2–5 min that issue 12's target (3) is about.
LONG_ROWS: list[LearnedRow] = [
    (
        "tasks of 2–5 min: detection delay ÷ age p50 / p99 / max, %",
        lambda r: " / ".join(
            _f(v * 100, 1)
            for v in (
                r.detection_share_target.p50,
                r.detection_share_target.p99,
                r.detection_share_target.max,
            )
        ),
        None,
    ),
    (
        "tasks of 2–5 min: polls per task",
        lambda r: _f(r.polls_target, 1),
        lambda r: r.polls_target,
    ),
    (
        "… a punctual 5 s poller's (⌈age ÷ 5 s⌉), and it ÷ this run's",
        lambda r: (
            f"{_f(r.punctual_naive_target, 1)}, "
            f"{_f(ratio(r.punctual_naive_target, r.polls_target), 2)}×"
        ),
        None,
    ),
    ("polls per task, tasks of 2–3 / 3–4 / 4–5 min", _minutes, None),
]


def learned_note(first: RunResult) -> str:
    """What to know of a scenario beyond its size and task times."""
    if first.scenario.group != "long":
        return ""
    return (
        " As many users as kie's 10 status queries per second carry for the learned schedule "
        '(see "kie\'s status limit" in How the benchmark works). A punctual 5 s poller '
        f"would make {first.users / 5:g} a second"
        + (
            ": the naive baseline, keeping kie's limit, falls behind its 5 s."
            if first.users / 5 > 10
            else ", within kie's limit."
        )
    )


LEARNED_TITLES = {
    "long": "Long tasks: kie, poll mode, tasks of 2–5 min, within kie's status limit",
    "kie-60": "Learned schedule: kie, poll mode, tasks of 60 s ± 30 %",
    "kling-60": "Learned schedule: official Kling, poll mode, tasks of 60 s ± 30 %",
}


def learned_groups(results: Sequence[RunResult]) -> list[str]:
    """The learned-schedule scenarios among the results, in order."""
    found: list[str] = []
    for r in results:
        if r.scenario.group not in ("load", "replicas") and r.scenario.group not in found:
            found.append(r.scenario.group)
    return found


def learned_rows(results: Sequence[RunResult], group: str) -> tuple[list[str], list[list[str]]]:
    """One learned-schedule scenario: ours, the naive baseline, and naive ÷ ours."""
    runs = [r for r in results if r.scenario.group == group]
    ours = next((r for r in runs if r.scenario.tracker == "real"), None)
    naive = next((r for r in runs if r.scenario.tracker == "naive"), None)
    shown = [r for r in (ours, naive) if r is not None]
    headers = ["", *("ours" if r is ours else "naive baseline" for r in shown)]
    both = ours is not None and naive is not None
    if both:
        headers.append("naive ÷ ours")
    rows = []
    listed = LEARNED_ROWS[:2] + LONG_ROWS + LEARNED_ROWS[2:] if group == "long" else LEARNED_ROWS
    for name, cell, value in listed:
        row = [name, *(cell(r) for r in shown)]
        if ours is not None and naive is not None:
            row.append("" if value is None else f"{_f(ratio(value(naive), value(ours)), 2)}×")
        rows.append(row)
    return headers, rows


def learned_lines(results: Sequence[RunResult], markdown_tables: bool) -> list[str]:
    """Each learned-schedule scenario's title and table."""
    lines: list[str] = []
    table = markdown_table if markdown_tables else text_table
    for group in learned_groups(results):
        first = next(r for r in results if r.scenario.group == group)
        title = LEARNED_TITLES.get(group, group)
        warm = first.scenario.warmup
        lines += [
            f"### {title}" if markdown_tables else title,
            "",
            f"{first.users} users at once, measured after a warm-up wave of {warm} in the same "
            f"bot process; task times {first.scenario.times.describe()}.{learned_note(first)}",
            "",
            table(*learned_rows(results, group)),
            "",
        ]
    return lines


def _throughput(r: RunResult) -> float:
    """Videos per real-life minute: the wave over the time to its last video, × K."""
    return r.exactly_one / r.makespan * 60 / r.scenario.time_scale if r.makespan > 0 else math.nan


def _latency(r: RunResult) -> str:
    if r.scenario.callbacks:
        return f"{_f(r.latency_ms.p50)} / {_f(r.latency_ms.p99)} ms"
    k = r.scenario.time_scale / 1000
    return f"{_f(r.latency_ms.p50 * k, 1)} / {_f(r.latency_ms.p99 * k, 1)} real-life s"


def _each(values: list[float], digits: int = 1) -> str:
    return " / ".join(_f(v, digits) for v in values) if values else "–"


def _bots_and_db_cpu(r: RunResult) -> float:
    db = 0.0 if r.scenario.store == "sqlite" or math.isnan(r.db.cpu) else r.db.cpu * 1000
    # SQLite runs inside the bot: its thread's CPU is already in the bot's.
    return r.cpu_per_task_ms + db


# The replicas scenario: a row, and what its ratio PostgreSQL ÷ SQLite compares.
REPLICA_ROWS: list[LearnedRow] = [
    ("users with exactly one video (warm-up wave)", _wave, None),
    ("missing / duplicated videos", lambda r: f"{r.missing} / {r.duplicates}", None),
    ("paid creates per Generate pressed", lambda r: _f(r.creates_per_press, 3), None),
    (
        "kie creates in any 10 real-life s, most (kie takes 20)",
        lambda r: str(r.peak_creates),
        None,
    ),
    (
        "Telegram calls to chats in any real-life second, most (Telegram takes ~30)",
        lambda r: _f(r.peak_telegram_per_s, 1),
        None,
    ),
    (
        "first photo → last video, s (real-life: × K)",
        lambda r: f"{_f(r.makespan, 1)} ({_f(r.makespan * r.scenario.time_scale)})",
        lambda r: r.makespan,
    ),
    ("videos per real-life minute", lambda r: _f(_throughput(r), 1), _throughput),
    ("completion → sendVideo p50 / p99", _latency, lambda r: r.latency_ms.p99),
    (
        "photo → draft p50 / p99, ms",
        lambda r: f"{_f(r.draft_ms.p50)} / {_f(r.draft_ms.p99)}",
        lambda r: r.draft_ms.p99,
    ),
    (
        "webhook deliveries sent again / lost",
        lambda r: (
            f"{r.webhook_retried:,} / {r.webhook_refused}" if r.scenario.mode == "webhook" else "–"
        ),
        None,
    ),
    ("peak RSS (VmHWM) of each bot process, MB", lambda r: _each(r.process_peak_mb), None),
    (
        "bot CPU per task, ms: all processes (each)",
        lambda r: f"{_f(r.cpu_per_task_ms, 1)} ({_each(r.process_cpu_ms)})",
        lambda r: r.cpu_per_task_ms,
    ),
    (
        "database CPU per task, ms (PostgreSQL's server processes; SQLite's thread in the bot)",
        lambda r: _f(r.db.cpu * 1000, 1),
        lambda r: r.db.cpu,
    ),
    (
        "bots + database CPU per task, ms",
        lambda r: _f(_bots_and_db_cpu(r), 1),
        _bots_and_db_cpu,
    ),
    (
        "database statements per task (BEGIN and COMMIT included)",
        lambda r: _f(r.db.statements, 1),
        lambda r: r.db.statements,
    ),
    ("database transactions per task", lambda r: _f(r.db.transactions, 1), None),
    (
        "server execution time per task, ms (pg_stat_statements)",
        lambda r: _f(r.db.exec_ms, 2),
        None,
    ),
    (
        "rows read / written per task (pg_stat_database)",
        lambda r: f"{_f(r.db.rows_read)} / {_f(r.db.rows_written, 1)}",
        None,
    ),
    ("database size at the end, MB", lambda r: _f(r.db_bytes / 1e6, 1), None),
    ("errors in the bots' logs", lambda r: str(len(r.problems)), None),
]


def replica_rows(results: Sequence[RunResult]) -> tuple[list[str], list[list[str]]]:
    """The replicas scenario: each run, and PostgreSQL ÷ SQLite when both ran."""
    runs = [r for r in results if r.scenario.group == "replicas"]
    one = next((r for r in runs if r.scenario.store == "sqlite"), None)
    many = next((r for r in runs if r.scenario.store == "postgres"), None)
    headers = ["", *(f"{r.scenario.processes}, {r.scenario.store_name}" for r in runs)]
    both = one is not None and many is not None
    if both:
        headers.append("PostgreSQL ÷ SQLite")
    rows = []
    for name, cell, value in REPLICA_ROWS:
        row = [name, *(cell(r) for r in runs)]
        if one is not None and many is not None:
            row.append("" if value is None else f"{_f(ratio(value(many), value(one)), 2)}×")
        rows.append(row)
    return headers, rows


def replica_lines(results: Sequence[RunResult], markdown_tables: bool) -> list[str]:
    """The replicas scenario's title, what it ran and its table."""
    runs = [r for r in results if r.scenario.group == "replicas"]
    if not runs:
        return []
    first = runs[0].scenario
    title = "Replicas: one process on SQLite, several on one PostgreSQL"
    table = markdown_table if markdown_tables else text_table
    lines = [
        f"### {title}" if markdown_tables else title,
        "",
        f"{first.users:,} users at once, {first.mode} mode, {first.hooks}, measured after a "
        f"warm-up wave of {first.warmup}; task times {first.times.describe()}.",
        "",
        table(*replica_rows(results)),
        "",
    ]
    for r in runs:
        if not r.top_statements:
            continue
        lines += [
            f"PostgreSQL's statements with the most execution time during the wave "
            f"({r.scenario.processes}; pg_stat_statements, lock waits included):",
            "",
            table(
                ["statement", "calls per task", "ms per task", "ms per call"],
                [
                    [
                        f"`{s.query[:110]}{'…' if len(s.query) > 110 else ''}`",
                        _f(s.calls / r.users, 1),
                        _f(s.exec_ms / r.users, 1),
                        _f(s.exec_ms / s.calls if s.calls else math.nan, 2),
                    ]
                    for s in r.top_statements
                ],
            ),
            "",
        ]
    return lines


def short_label(r: RunResult) -> str:
    """A column heading."""
    s = r.scenario
    hooks = {"callbacks": " +cb", "callbacks lost": " cb lost", "polls only": ""}[s.hooks]
    return f"{s.mode}{hooks}{' NAIVE' if s.tracker == 'naive' else ''}"


def pairs(results: Sequence[RunResult]) -> list[tuple[RunResult, RunResult]]:
    """(naive, real) runs of the same load, for the baseline ratios."""
    found = []
    load = [r for r in results if r.scenario.group == "load"]
    for naive in (r for r in load if r.scenario.tracker == "naive"):
        real = next(
            (
                r
                for r in load
                if r.scenario.tracker == "real"
                and r.scenario.callbacks == naive.scenario.callbacks
                and r.scenario.mode == naive.scenario.mode
            ),
            None,
        )
        if real is not None:
            found.append((naive, real))
    return found


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain table for the terminal."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(lines)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def result_rows(results: Sequence[RunResult]) -> tuple[list[str], list[list[str]]]:
    """The main table: one column per load run."""
    load = [r for r in results if r.scenario.group == "load"]
    headers = ["", *(short_label(r) for r in load)]
    return headers, [[name, *(cell(r) for r in load)] for name, cell in ROWS]


def ratio_rows(results: Sequence[RunResult]) -> tuple[list[str], list[list[str]]]:
    """Naive ÷ ours for each pair of runs with the same load."""
    found = pairs(results)
    headers = ["naive ÷ ours", *(short_label(real) for _, real in found)]
    rows = [
        [name, *(f"{_f(ratio(value(naive), value(real)), 1)}×" for naive, real in found)]
        for name, value in RATIOS
    ]
    return headers, rows


def tick_rows(ticks: Sequence[TickCost]) -> tuple[list[str], list[list[str]]]:
    """The tick micro-benchmark."""
    headers = ["tasks waiting", "due at the tick", "tick p50, µs", "tick p95, µs"]
    rows = [[f"{t.waiting:,}", str(t.due), _f(t.p50_us), _f(t.p95_us)] for t in ticks]
    return headers, rows


def target_rows(targets: Sequence[Target]) -> tuple[list[str], list[list[str]]]:
    """Each target with its measurement and verdict."""
    marks = {"met": "✅ met", "missed": "❌ missed", "not shown": "– not shown"}
    headers = ["target", "measured", "verdict"]
    return headers, [[t.goal, t.measured, marks[t.verdict]] for t in targets]


def target_parts(targets: Sequence[Target]) -> list[tuple[str, list[Target]]]:
    """The targets by the list they belong to (the load targets, issue 12's)."""
    parts: dict[str, list[Target]] = {}
    for target in targets:
        parts.setdefault(target.part, []).append(target)
    return list(parts.items())


def print_report(
    results: Sequence[RunResult],
    ticks: Sequence[TickCost],
    big: BigVideo | None,
    targets: Sequence[Target],
) -> None:
    """Everything, as plain tables."""
    if any(r.scenario.group == "load" for r in results):
        print()
        print(text_table(*result_rows(results)))
    if pairs(results):
        print()
        print(text_table(*ratio_rows(results)))
    learned = learned_lines(results, markdown_tables=False)
    learned += replica_lines(results, markdown_tables=False)
    if learned:
        print()
        print("\n".join(learned).rstrip())
    if ticks:
        print()
        print(text_table(*tick_rows(ticks)))
    if big is not None:
        print(f"\n{big.size_mb:.0f} MB video: RSS {big.before_mb:.1f} → {big.peak_mb:.1f} MB")
    for part, listed in target_parts(targets):
        print()
        print(f"Targets ({part}):")
        print(text_table(*target_rows(listed)))


def profile_section(results: Sequence[RunResult]) -> list[str]:
    """Where each profiled run's bot spent its time (py-spy, samples holding the GIL)."""
    lines: list[str] = []
    for r in results:
        if r.profile is None or not r.profile.exists():
            continue
        total, spots = hotspots(r.profile, top=12)
        shares = top_inclusive(r.profile, list(FRAMES.values()))
        lines += [
            f"#### {r.scenario.label}",
            "",
            f"{total:,} samples. Inclusive share of the samples:",
            "",
            markdown_table(
                ["part of the bot", "share"],
                [[name, f"{shares[frame]:.1%}"] for name, frame in FRAMES.items()],
            ),
            "",
            "Functions with the most samples of their own:",
            "",
            markdown_table(
                ["function", "own", "inclusive"],
                [[f"`{s.name}`", f"{s.own:.1%}", f"{s.inclusive:.1%}"] for s in spots],
            ),
            "",
        ]
    return lines


def markdown(
    context: Context,
    results: Sequence[RunResult],
    ticks: Sequence[TickCost],
    big: BigVideo | None,
    targets: Sequence[Target],
) -> str:
    """One run of the benchmark as a section of docs/benchmarks.md."""
    lines = [
        f"## {context.date}: `{context.command}`",
        "",
        f"**Commit:** {context.commit}.",
        "",
        *([f"**Note:** {context.note}", ""] if context.note else []),
        "**Machine:** " + "; ".join(f"{k} {v}" for k, v in context.machine.items()) + ".",
        "",
        "**Parameters:** " + "; ".join(f"{k}: {v}" for k, v in context.parameters.items()) + ".",
        "",
    ]
    for part, listed in target_parts(targets):
        title = "Targets" if part == "load" else f"Targets of {part}"
        lines += [f"### {title}", "", markdown_table(*target_rows(listed)), ""]
    if any(r.scenario.group == "load" for r in results):
        lines += ["### Results per run", "", markdown_table(*result_rows(results)), ""]
    if pairs(results):
        lines += [
            "### Baseline: the naive tracker (one coroutine per task, a poll every 5 s)",
            "",
            markdown_table(*ratio_rows(results)),
            "",
        ]
    lines += learned_lines(results, markdown_tables=True)
    lines += replica_lines(results, markdown_tables=True)
    if ticks:
        lines += [
            "### Tracker tick against tasks not due",
            "",
            "`TaskRepository.due(now, 100)` + `next_due_after(now)` on a file database.",
            "",
            markdown_table(*tick_rows(ticks)),
            "",
        ]
    if big is not None:
        lines += [
            f"### A {big.size_mb:.0f} MB video",
            "",
            f"RSS before the delivery {big.before_mb:.1f} MB, at its peak {big.peak_mb:.1f} MB "
            f"(+{big.rise_mb:.1f} MB); delivered intact: {'yes' if big.exact else 'NO'}.",
            "",
        ]
    profiles = profile_section(results)
    if profiles:
        lines += ["### Profiles (py-spy)", "", *profiles]
    return "\n".join(lines).rstrip() + "\n"


HEADER = """# Benchmarks

`python -m bench` (see README) starts the bot as its own process against the loopback fakes of
`tests/fakes/`, lets N users send a photo and tap Generate at once, and measures what the
issue asks for. Each section below is one run of the benchmark; how to read it is in
[How the benchmark works](#how-the-benchmark-works) at the end.
"""


def write(path: Path, section: str, notes: str, append: bool) -> None:
    """Write the section to `path`, after the sections already there when `append`."""
    previous = path.read_text() if append and path.exists() else ""
    sections = previous.split("\n## ")[1:] if previous.startswith(HEADER.split("\n")[0]) else []
    kept = [s for s in sections if not s.startswith("How the benchmark works")]
    body = [HEADER.rstrip(), *("## " + s.rstrip() for s in kept), section.rstrip(), notes.rstrip()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(body) + "\n")


NOTES = """## How the benchmark works

- **The bot** runs as its own process, so its memory (`VmHWM`, `VmRSS` from `/proc`) and CPU
  time (`utime + stime`) are its own: `python -m bot` for a real-time run, otherwise
  `python -m bench.botproc`, which is `bot.app.run` with the tracker class and the time scale
  applied to what has no environment variable. Its database is a fresh file in a temporary
  folder; its environment points at the fakes.
- **The fakes** (`tests/fakes/`: the Bot API, kie.ai and the official Kling API) run in the
  benchmark's process on loopback. Every user sends the same 1280×720 JPEG with a caption
  (the first wave while the bot is still starting, so it finds them all waiting at once;
  the measured wave, after the warm-up, all at once to the running bot; webhook mode: they
  are posted to the bot's `/telegram` with the `secret_token` from its `setWebhook`, over 40
  connections as Telegram does); each user taps Generate as soon as the draft arrives, on
  the default model.
- **The parts** (`--scenario`, all by default), each run after a warm-up wave: *load* is N
  users at once (`--users`, 1,000) with tasks of 2–5 min, in each update mode × callback
  setting, with the naive baseline; *long* is tasks of 2–5 min in poll mode on kie with as
  many users as kie's status limit carries (`--long-users`, 100; see below), next to the
  naive baseline: where issue 12's target (3) is judged; *kie-60* and *kling-60* are the
  learned poll schedule (issue 12) in poll mode on kie and on the official Kling API, with
  tasks of 60 s ± 30 %, next to the naive baseline.
- **Replicas** (`--scenario replicas`, issue 14): the load's N users (`--users`) with
  callbacks in webhook mode, after a warm-up wave of 40, twice: once on one bot process with
  SQLite, once on `--replicas` (3) bot processes sharing one PostgreSQL database. The server
  is the benchmark's own, started as the tests start theirs (`initdb` and `postgres` in a
  temporary folder, as the `postgres` account when root, fsync off, loopback, a free port;
  `tests/postgres.py`), with `pg_stat_statements` loaded when installed. Each replica has its
  own web port and `PUBLIC_URL`, so a provider's callback comes back to the replica that
  created the task; the fake Telegram's updates are POSTed to the replicas' webhooks in turn
  (40 connections) and an update answered with anything but 200 (a replica answers 503 while
  another handles it) is sent again, to the next replica, after 0.5/K s, as Telegram
  redelivers. Skipped, with a line, without PostgreSQL's binaries or asyncpg.
- **The database's own cost** is counted from the start of the measured wave to its end,
  divided by its users. PostgreSQL: *CPU* is that of every server process (the postmaster's
  own with its exited children's, and every running child: backends, checkpointer, WAL
  writer…, read from `/proc`); *statements* and *server execution time* are
  `pg_stat_statements`' calls and `total_exec_time` for the bot's database (BEGIN and COMMIT
  included; a statement's time includes waiting for the advisory locks it takes);
  *transactions* and *rows read / written* are `pg_stat_database`'s `xact_commit +
  xact_rollback`, `tup_returned + tup_fetched` and `tup_inserted + tup_updated +
  tup_deleted`. SQLite runs inside the bot, so its cost is part of the bot's: *CPU* is that of
  aiosqlite's thread, where every SQLite call runs (with aiosqlite's own Python around it),
  read from `/proc/<pid>/task/<tid>`; *statements* are counted by a trace callback on the
  connection (`sqlite3`'s `set_trace_callback`, one call per statement SQLite executes,
  BEGIN and COMMIT included), *transactions* are its COMMITs and ROLLBACKs; `bench.botproc`
  installs both and writes them to a file every 0.2 s. "Bots + database CPU" adds the
  PostgreSQL server's CPU to the bots' (SQLite's is already in the bot's).
- **Time scale ×K** plays real life K times faster: `POLL_INTERVAL` 10/K s, `TASK_TIMEOUT`
  1200/K s, the progress-edit interval, the task times, the naive tracker's 5 s, Telegram's
  flood limit (30 requests per 1/K s, in one process's limiter and in the slots replicas
  share; the runs before 2026-11-29 19:00 UTC had 30×K per 1 s, which let bursts K times as
  large through; since 2026-11-29 21:00 UTC a sliding window whose calls count until 1/K s
  after their answer, before it PTB's bucket, which let up to twice the rate into one
  window), the bot's gates for kie's creates (20 per 11/K s, inside
  kie's 20 per 10/K s) and, where it has one, for kie's status queries (10 per 1/K s), and
  the fake kie's own status limit all scale together, as does what the bot counts in
  `POLL_INTERVAL`s (such as its built-in guesses of generation times, before it has learned).
  Poll counts, Telegram calls and CPU per task do not depend on K; detection delays are shown
  in real-life seconds (× K). Latencies in milliseconds are measured as they are, which is
  only fair while the bot has CPU to spare: the row "bot CPU while serving" shows it (the bot
  is one asyncio process, so 100 % of one core is its ceiling).
- **Task times.** The load and long runs spread them evenly over 120–300 s. In kie-60 and kling-60,
  "60 s ± 30 %" is read as a bell, as real generation times are, not as an even spread: a
  normal distribution with mean 60 s and σ = 6 s (10 %), so that ±30 % is ±3σ, clipped to
  42–78 s. Both are drawn deterministically: the n-th task created takes the time at the
  n-th fraction of a golden-ratio sequence (n × 0.618… mod 1; `NormalDist(60, 6).inv_cdf` of
  it for the bell), so any run of consecutive tasks covers the distribution and every run
  gets the same times. Why not evenly over 42–78 s: then no poller that polls each task on its own
  schedule could reach the baseline's median with half its polls. The baseline polls every
  5 s: about 12 polls for a 60 s task, and a median delay of 2.5 s. To match that median,
  half the tasks (18 s of the 36 s window) must be noticed within 2.5 s of their end, and
  a poll notices that soon only the tasks that ended in the 2.5 s before it, so at least
  7.2 polls must fall inside the window: more than the 6 that half the baseline's polls
  allow. With the bell, half the tasks end within ±4 s of 60 s (±0.674σ).
- **Warm-up.** Every run first serves a warm-up wave (`--warmup`: by default 40 users in
  load and long, as many as the bot keeps times of one kind, and 20 in kie-60 and kling-60;
  0 for none) with tasks from the same distribution, in the same bot process and database,
  so the bot has learned generation times from finished tasks; once every warm-up user has
  a video, the measured users write. The waves have user ids of their own (from 710,000,000
  and from 700,000,000), so each knows its videos; every user of both must get exactly one
  video. Only the measured wave is reported: provider requests, Telegram calls, status
  queries and CPU time are counted from its start (peak RSS is the process's whole life).
  The naive baseline gets the same warm-up, although it learns nothing. The fake's sequence
  of task times runs on across the waves. (The load runs before 2026-11-29 had no warm-up:
  the bot met them on its built-in guess of 1–5 min.)
- **kie's status limit, the load runs and long.** kie answers at most 10 status queries per
  second and key; the bot queues its own at 10 per 1.1 s (9.1 a second), and so does the
  naive baseline. With N users at once the bot creates at kie's maximum, 20 tasks per 11 s
  (1.8 a second), for N ÷ 1.8 s. Noticing every task within 10 % of its age takes a look at
  least every 9.5 % of the age: about 7.8 looks per task of 2–5 min. At 1,000 users that
  is 15–16 status queries a second at the peak, over most of the ~550 s of creation, where
  10 ÷ 1.8 ≈ 5.5 looks per task is all kie allows: the gate queues the looks and detection
  slips past 10 % of the age. That is the limit, not the schedule; at that load use
  callbacks (`PUBLIC_URL`), which need no status queries. The long scenario judges the
  schedule where the limit does not bind. Its size comes from an estimate of the learned
  schedule's demand (each task's looks on the bot's own `Schedule`, tasks of 120–300 s
  created 20 per 11 s, after a warm-up of 40): over any 10 s, with the warm-up's 40 times
  as the sample, 100 users peak at 7.6 status queries a second, 150 at 10.3 and 300 at
  13.5; with the bot's rolling memory of the 40 newest finished tasks (during a burst the
  newest are the shorter ones, which packs the dense part: about 8.5 looks per task rather
  than 7.9), 100 users peak at 9.8, 150 at 12.2 and 300 at 19.7. So 100 is the largest
  round size that stays under kie's 10, and about at the bot's 9.1. The row "status
  queries per real-life second, peak over 10 s" shows what each run made. A punctual 5 s
  poller would make N ÷ 5 a second, 20 for 100 users: the naive baseline, keeping kie's
  limit, falls behind its 5 s, so long compares our polls both with a punctual poller's
  ⌈age ÷ 5 s⌉ per task and with what the baseline actually made.
- **kie-60** compares the bot with the naive baseline on kie. kie answers at most 10 status
  queries per second and key; 40 users polled every 5 s by the baseline make 8 on average,
  and where the bot's kie provider states that limit the baseline queues its queries to keep
  it (tasks created together would otherwise poll in bursts above it). "Polls per task" are
  recordInfo requests ÷ tasks; the row "refused" counts the fake's 429s.
- **kling-60** runs the bot with only the official Kling backend (`KLING_ACCESS_KEY` +
  `KLING_SECRET_KEY`, `KLING_API_URL` at a loopback `FakeKling`, `PREVIEW_BACKEND=false`,
  `DEFAULT_MODEL=kling:kling-v2-6`). **Status requests per task** are list calls
  (`GET /v1/videos/image2video?pageNum=…`) ÷ tasks + per-task queries
  (`GET /v1/videos/image2video/{id}`) ÷ tasks (+ lookups by `external_task_id`, if any),
  counted as requests arriving at the fake; the fake's per-task `polls` counter is not used,
  as a list call raises it for every task it lists. The naive baseline queries each task
  every 5 s.
- **Callbacks.** "+cb" runs give the bot `PUBLIC_URL` and the fake kie posts a callback when a
  task ends. Without callbacks, polling mode has no `PUBLIC_URL`: the bot knows it must poll
  ("poll mode"). Webhook mode needs `PUBLIC_URL`, so the bot asks for callbacks there and
  the fake never sends them ("cb lost"): what a lost callback costs, not poll mode.
- **Latency** is from the moment the fake marks the task done to the moment the `sendVideo`
  request has arrived at the fake Telegram; outside the big-video check the videos are 4 KB,
  so no file transfer is in it. **Detection** is the arrival at the fake provider of the first
  status request answered "success" (the poll or list call that saw it, or the re-read after a
  callback); its delay is divided by the task's age at completion. All of these are read on
  the benchmark's clock. **Completion → sendVideo in real-life seconds:** in the load runs'
  table the measured time × K (the bot's own handling counted K times over); in kie-60 and
  kling-60 the detection delay × K plus detection → sendVideo as measured, since the
  schedule's wait shrinks with K and the bot's own work does not (reading the answer,
  downloading the video, sendVideo: tens of ms, more when one list call finds many tasks done
  at once).
- **Ratios** are naive ÷ ours: above 1, the bot does better.
- **Exactly once:** every user must get one `sendVideo` whose bytes are the fake's video.
- **Provider calls** are the requests the fake provider received (upload, create, status
  queries; the video download is counted apart). **Telegram calls** are the bot's Bot API
  requests except start-up (`getMe`, `getUpdates`, `setWebhook`, `setMyCommands`, …).
- **In flight:** tasks whose Generate the bot has answered and whose video has not arrived.
- **The tick** micro-benchmark times what one pass of the tracker's loop asks the database
  (`due(now, 100)` and `next_due_after(now)` through aiosqlite), with 100, 1,000 and 10,000
  tasks scheduled an hour later and 0 or 10 due now; one database per size, taking turns,
  with the process on one CPU (a wake-up across CPUs costs this VM ~0.5 ms at random).
- **Intake:** updates handled per second are the 2N updates (photo, Generate) over the time
  from the first being available to the bot to the last Generate being answered
  (`answerCallbackQuery`); drafts per second likewise up to the last draft.
- **Profiles** (`--profile`) attach py-spy to the bot (200 samples/s, only samples holding the
  GIL, so waiting is left out); the inclusive shares say where the bot's Python time went.
- **The big video** is one task in a real-time `python -m bot` with callbacks, after a warm-up
  task; the peak is `VmHWM` after resetting it (`/proc/<pid>/clear_refs`) and RSS sampled every
  5 ms.
"""
