"""Smoke test of the load benchmark with a handful of users: it runs and its numbers add up."""

from __future__ import annotations

import math
from pathlib import Path

from bench import load, report, tick
from bench.results import RunResult, summarize
from bench.targets import evaluate

USERS = 4


async def run(tmp_path: Path, scenario: load.Scenario) -> RunResult:
    """One benchmark run, summarised."""
    raw = await load.run(scenario, tmp_path / scenario.mode / scenario.tracker, say=lambda _: None)
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
    assert not result.problems


async def test_benchmark_machinery_end_to_end(tmp_path: Path) -> None:
    common = {"users": USERS, "task_seconds": (10.0, 20.0), "time_scale": 20.0}
    webhook = await run(tmp_path, load.Scenario(mode="webhook", callbacks=True, **common))
    naive = await run(
        tmp_path, load.Scenario(mode="polling", callbacks=False, tracker="naive", **common)
    )
    for result in (webhook, naive):
        check_run(result)
    assert not math.isnan(webhook.updates_per_s) and webhook.updates_per_s > 0

    ticks = await tick.tick_costs(sizes=(10, 30), rounds=5)
    assert [(t.waiting, t.due) for t in ticks] == [(10, 0), (10, 10), (30, 0), (30, 10)]
    targets = evaluate([webhook, naive], ticks, None)
    assert {t.verdict for t in targets} <= {"met", "missed", "not shown"}
    context = report.Context("today", "python -m bench", "abc", {"cpu": "x"}, {"users": "4"})
    text = report.markdown(context, [webhook, naive], ticks, None, targets)
    assert "| users with exactly one video | 4 / 4 | 4 / 4 |" in text
