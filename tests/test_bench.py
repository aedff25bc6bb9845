"""Smoke test of the load benchmark with a handful of users: it runs and its numbers add up."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from bench import __main__ as cli
from bench import dbcost, load, report, tick
from bench.results import RunResult, peak_rate, summarize
from bench.targets import ISSUE_12, evaluate

USERS = 4


async def run(tmp_path: Path, scenario: load.Scenario) -> RunResult:
    """One benchmark run, summarised."""
    folder = tmp_path / scenario.group / scenario.mode / scenario.tracker
    raw = await load.run(scenario, folder, say=lambda _: None)
    return summarize(raw)


def check_run(result: RunResult) -> None:
    """Every user got exactly one video and each count is what one task per user implies."""
    assert result.exactly_one == USERS
    assert result.missing == result.duplicates == result.wrong_bytes == 0
    assert result.creates == USERS
    assert result.provider_calls["upload"] == result.provider_calls["create"] == 1
    assert result.provider_calls["download"] == 1 and result.provider_calls["poll"] >= 1
    assert result.telegram_calls["sendVideo"] == 1 and result.telegram_total > 3
    assert result.latency_ms.count == result.detection_s.count == USERS
    assert result.latency_ms.p50 > 0 and result.detection_share.max < 1
    assert result.peak_rss_mb > 10 and result.cpu_per_task_ms > 0
    assert result.peak_inflight >= 1 and result.db_bytes_closed > 0
    assert result.peak_status_per_s > 0
    assert not result.problems


async def test_benchmark_machinery_end_to_end(tmp_path: Path) -> None:
    common = {"users": USERS, "task_seconds": (10.0, 20.0), "time_scale": 20.0}
    webhook = await run(tmp_path, load.Scenario(mode="webhook", callbacks=True, warmup=2, **common))
    naive = await run(
        tmp_path, load.Scenario(mode="polling", callbacks=False, tracker="naive", **common)
    )
    # Enough warm-up tasks for the bot to poll on learned times (LEARNED_AFTER) in long.
    long = await run(
        tmp_path,
        load.Scenario(mode="polling", callbacks=False, warmup=6, group="long", **common),
    )
    for result in (webhook, naive, long):
        check_run(result)
    assert not math.isnan(webhook.updates_per_s) and webhook.updates_per_s > 0
    for warmed in (webhook, long):
        assert warmed.warmup is not None and warmed.warmup.perfect and warmed.waves_perfect
    assert naive.warmup is None

    ticks = await tick.tick_costs(sizes=(10, 30), rounds=5)
    assert [(t.waiting, t.due) for t in ticks] == [(10, 0), (10, 10), (30, 0), (30, 10)]
    targets = evaluate([webhook, naive, long], ticks, None)
    assert {t.verdict for t in targets} <= {"met", "missed", "not shown"}
    issue = [t for t in targets if t.part == ISSUE_12]
    assert len(issue) == 4 and "long, 4 users after a warm-up of 6" in issue[2].measured
    context = report.Context("today", "python -m bench", "abc", {"cpu": "x"}, {"users": "4"})
    text = report.markdown(context, [webhook, naive, long], ticks, None, targets)
    assert "| users with exactly one video (warm-up wave) | 4 / 4 (2 / 2) | 4 / 4 |" in text
    assert "### Long tasks: kie, poll mode, tasks of 2–5 min" in text


def test_every_scenario_gets_its_warmup_and_long_is_poll_mode_on_kie() -> None:
    plan = cli.scenarios(cli.parser().parse_args([]))
    by_group = {group: [s for s in plan if s.group == group] for group in load.GROUP_TITLES}
    assert [len(runs) for runs in by_group.values()] == [6, 2, 2, 2, 2]
    assert {s.warmup for s in by_group["load"] + by_group["long"]} == {40}
    assert {s.warmup for s in by_group["kie-60"] + by_group["kling-60"]} == {20}
    assert {s.users for s in by_group["load"]} == {1000}
    for s in by_group["long"]:
        assert (s.users, s.backend, s.mode, s.public_url) == (100, "kie", "polling", False)
    assert [s.tracker for s in by_group["long"]] == ["real", "naive"]
    one, many = by_group["replicas"]
    assert (one.replicas, one.store, many.replicas, many.store) == (1, "sqlite", 3, "postgres")
    assert one == dataclasses.replace(many, replicas=1, store="sqlite")
    assert (one.users, one.mode, one.callbacks, one.warmup) == (1000, "webhook", True, 40)
    none = cli.scenarios(cli.parser().parse_args(["--warmup", "0", "--long-users", "30"]))
    assert {s.warmup for s in none} == {0}
    assert {s.users for s in none if s.group == "long"} == {30}


def test_peak_rate_is_the_busiest_window() -> None:
    assert math.isnan(peak_rate([], 1.0))
    assert peak_rate([0.0, 0.1, 0.2, 5.0], 1.0) == 3.0
    assert peak_rate([0.0, 1.0, 2.0, 3.0], 2.0) == 1.0


async def test_replicas_scenario_end_to_end(tmp_path: Path) -> None:
    """Three bot processes on one PostgreSQL beside one on SQLite: exactly once, and the
    database's own cost measured on both."""
    if (missing := dbcost.postgres_missing()) is not None:
        pytest.skip(missing)
    common = {"users": USERS, "task_seconds": (10.0, 20.0), "time_scale": 20.0}
    one = load.Scenario(mode="webhook", callbacks=True, group="replicas", **common)
    many = dataclasses.replace(one, replicas=3, store="postgres")
    results = [await run(tmp_path / s.store, s) for s in (one, many)]
    for result in results:
        check_run(result)
        assert result.creates_per_press == 1 and result.webhook_refused == 0
        assert result.db.statements > 0 and result.db.cpu >= 0 and result.db.transactions > 0
    sqlite, postgres = results
    assert len(sqlite.process_peak_mb) == 1 and len(postgres.process_peak_mb) == 3
    assert postgres.db.rows_written > 0 and postgres.db.exec_ms > 0
    assert postgres.top_statements and math.isnan(sqlite.db.exec_ms)
    context = report.Context("today", "python -m bench", "abc", {"cpu": "x"}, {"users": "4"})
    text = report.markdown(context, results, [], None, [])
    assert "### Replicas: one process on SQLite, several on one PostgreSQL" in text
    assert "| users with exactly one video (warm-up wave) | 4 / 4 | 4 / 4 |  |" in text
