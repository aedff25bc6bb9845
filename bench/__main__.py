"""`python -m bench`: the load benchmark; prints the results and writes docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import hashlib
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import bigvideo, dbcost, load, report, tick
from bench.fakes import TaskTimes
from bench.load import GROUP_TITLES, KLING_MODEL, Backend, Group, Mode, Scenario
from bench.measure import machine
from bench.profile import Profiler
from bench.results import RunResult, summarize
from bench.targets import evaluate

ROOT = Path(__file__).parents[1]
# The learned-schedule scenarios' tasks: 60 s ± 30 %, bell-shaped (see TaskTimes).
LEARNED_SECONDS = (42.0, 78.0)
LEARNED: tuple[tuple[Group, Backend], ...] = (("kie-60", "kie"), ("kling-60", "kling"))
# kie answers at most this many status queries per second and key.
KIE_STATUS_PER_S = 10.0
# Users at once in the long-task scenario: the most (in round sizes) whose learned polls, on
# 2–5 min tasks created at kie's maximum, stay under kie's 10 status queries per second at
# their peak (see "kie's status limit" in report.NOTES: 100 users peak at 7.6–9.8 a second
# over any 10 s, 150 at 10.3–12.2).
LONG_USERS = 100
# Warm-up users by scenario: the bot keeps the 40 newest times of a kind, so 2–5 min tasks
# get a full memory's worth; 60 s ± 30 % tasks 20.
WARMUPS: dict[Group, int] = {
    "load": 40,
    "long": 40,
    "kie-60": 20,
    "kling-60": 20,
    "replicas": 40,
}
# Bot processes on one PostgreSQL database in the replicas scenario.
REPLICAS = 3


def task_seconds(text: str) -> tuple[float, float]:
    """ "120-300" (spread evenly) or "150" (all the same), in real-life seconds."""
    low, _, high = text.partition("-")
    bounds = (float(low), float(high or low))
    if not 0 < bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError("expected S or LOW-HIGH seconds, 0 < LOW ≤ HIGH")
    return bounds


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--scenario",
        action="append",
        choices=list(GROUP_TITLES),
        help="what to run; repeat for several (default: all; each after a warm-up wave). "
        "load: N users at once with 2–5 min tasks, each mode × callback setting; long: 2–5 min "
        "tasks in poll mode on kie with as many users as kie's status limit carries; kie-60 / "
        "kling-60: the learned poll schedule in poll mode on kie / the official Kling API, "
        "tasks of 60 s ± 30 %%; replicas: the load's N users with callbacks, in webhook mode, "
        "once on one process with SQLite and once on --replicas processes sharing one "
        "PostgreSQL (a throwaway server of the benchmark's own; skipped without PostgreSQL)",
    )
    p.add_argument(
        "--users", type=int, default=1000, help="users at once in the load runs (default 1000)"
    )
    p.add_argument(
        "--task-seconds",
        type=task_seconds,
        default=(120.0, 300.0),
        help="how long the fake provider takes, real-life seconds: S or LOW-HIGH "
        "(default 120-300, spread evenly)",
    )
    hooks = p.add_mutually_exclusive_group()
    hooks.add_argument(
        "--callbacks", dest="callbacks", action="store_const", const="on", help="callbacks on only"
    )
    hooks.add_argument(
        "--no-callbacks",
        dest="callbacks",
        action="store_const",
        const="off",
        help="callbacks off only (default: one run with, one without)",
    )
    p.set_defaults(callbacks="both")
    p.add_argument(
        "--mode",
        choices=("polling", "webhook", "both"),
        default="both",
        help="how the bot takes updates (default both)",
    )
    p.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the naive tracker: in the load runs in the first mode for each "
        "callback setting, and in long, kie-60 and kling-60",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=REPLICAS,
        help=f"bot processes on PostgreSQL in the replicas scenario (default {REPLICAS})",
    )
    p.add_argument(
        "--long-users",
        type=int,
        default=LONG_USERS,
        help=f"users at once in the long scenario (default {LONG_USERS}: at kie's maximum "
        "creation rate their learned polls stay under kie's 10 status queries per second)",
    )
    p.add_argument(
        "--learned-users",
        type=int,
        default=40,
        help="measured users at once in kie-60 and kling-60 (default 40: the naive baseline's "
        "5 s polls then make 8 kie status queries per real-life second, within kie's 10)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="users of the warm-up wave the bot learns from before each run's measured wave, "
        "in every scenario (default: 40 in load and long, 20 in kie-60 and kling-60; 0: none)",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=5.0,
        help="play real life K times faster: POLL_INTERVAL, task times, Telegram's flood "
        "limit and the providers' request limits (default 5)",
    )
    p.add_argument(
        "--video-mb", type=float, default=45.0, help="big-video check size (0: skip; default 45)"
    )
    p.add_argument(
        "--tick",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time the tracker's tick against 100 to 10,000 waiting tasks",
    )
    p.add_argument("--profile", action="store_true", help="sample the bot with py-spy")
    p.add_argument("--out", default="docs/benchmarks.md", help='report file ("-": none)')
    p.add_argument("--append", action="store_true", help="keep the runs already in --out")
    p.add_argument("--note", default="", help="a sentence to print under the run's heading")
    return p


def groups(args: argparse.Namespace) -> list[Group]:
    """The parts of the benchmark asked for, in the order they run."""
    chosen = set(args.scenario or GROUP_TITLES)
    return [group for group in GROUP_TITLES if group in chosen]


def warmup(args: argparse.Namespace, group: Group) -> int:
    """Users of the warm-up wave before a scenario's measured one."""
    return WARMUPS[group] if args.warmup is None else max(0, args.warmup)


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    """The runs: each mode × callback setting, then the baseline; the long-task scenario with
    its baseline; then each learned scenario with its baseline."""
    runs: list[Scenario] = []
    chosen = groups(args)
    if "load" in chosen:
        modes: list[Mode] = ["polling", "webhook"] if args.mode == "both" else [args.mode]
        hooks = {"both": [True, False], "on": [True], "off": [False]}[args.callbacks]
        load = Scenario(
            users=args.users,
            task_seconds=args.task_seconds,
            time_scale=args.time_scale,
            warmup=warmup(args, "load"),
        )
        runs += [dataclasses.replace(load, mode=m, callbacks=c) for m in modes for c in hooks]
        if args.baseline:
            runs += [
                dataclasses.replace(load, mode=modes[0], callbacks=c, tracker="naive")
                for c in hooks
            ]
    if "long" in chosen:
        long = Scenario(
            users=args.long_users,
            task_seconds=args.task_seconds,
            callbacks=False,
            mode="polling",
            time_scale=args.time_scale,
            warmup=warmup(args, "long"),
            group="long",
        )
        runs.append(long)
        if args.baseline:
            runs.append(dataclasses.replace(long, tracker="naive"))
    for group, backend in LEARNED:
        if group not in chosen:
            continue
        learned = Scenario(
            users=args.learned_users,
            task_seconds=LEARNED_SECONDS,
            task_shape="normal",
            callbacks=False,
            mode="polling",
            time_scale=args.time_scale,
            backend=backend,
            warmup=warmup(args, group),
            group=group,
        )
        runs.append(learned)
        if args.baseline:
            runs.append(dataclasses.replace(learned, tracker="naive"))
    if "replicas" in chosen:
        one = Scenario(
            users=args.users,
            task_seconds=args.task_seconds,
            callbacks=args.callbacks != "off",
            mode="polling" if args.mode == "polling" else "webhook",
            time_scale=args.time_scale,
            warmup=warmup(args, "replicas"),
            group="replicas",
        )
        runs += [one, dataclasses.replace(one, replicas=max(1, args.replicas), store="postgres")]
    return runs


async def main_async(args: argparse.Namespace, argv: list[str]) -> int:
    """Run everything asked for, print it, and write the report."""
    if args.profile and not Profiler.available():
        print("--profile needs py-spy: pip install py-spy", file=sys.stderr)
        return 2
    plan = scenarios(args)
    measured, contents = code_state(), content_digest()
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="kling-bench-") as folder:
        work = Path(folder)
        for number, scenario in enumerate(plan, 1):
            print(f"run {number}/{len(plan)}: {scenario.label}", flush=True)
            missing = dbcost.postgres_missing() if scenario.store == "postgres" else None
            if missing is not None:
                print(f"  skipped: {missing}", flush=True)
                continue
            profile = work / f"profile-{number}.txt" if args.profile else None
            raw = await load.run(scenario, work / f"run-{number}", profile=profile)
            results.append(summarize(raw))
        ticks = await tick.tick_costs() if args.tick else []
        big = await bigvideo.measure(args.video_mb, work / "big") if args.video_mb > 0 else None
        targets = evaluate(results, ticks, big)
        report.print_report(results, ticks, big, targets)
        if args.out != "-":
            context = report.Context(
                date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                command=shown_command(argv),
                commit=measured
                if content_digest() == contents
                else f"{measured}; the code CHANGED during the run",
                machine=machine(),
                parameters=parameters(args),
                note=args.note,
            )
            section = report.markdown(context, results, ticks, big, targets)
            out = ROOT / args.out if not Path(args.out).is_absolute() else Path(args.out)
            report.write(out, section, report.NOTES, args.append)
            print(f"\nwritten to {out}")
    failed = any(not r.waves_perfect for r in results)
    return 1 if failed else 0


MEASURED = ("bot", "storage", "bench", "tests", "pyproject.toml")


def code_state() -> str:
    """The last commit of the measured code, and a digest of its uncommitted changes if any."""
    try:
        head = _git("log", "-1", "--format=%h", "--", *MEASURED)
        diff = _git("diff", "HEAD", "--", *MEASURED)
    except OSError:
        return "unknown"
    if not diff:
        return head or "unknown"
    digest = hashlib.sha256(diff.encode()).hexdigest()[:8]
    return f"{head} with uncommitted changes (diff {digest})"


def content_digest() -> str:
    """A digest of every source file of the measured code as it is on disk now."""
    digest = hashlib.sha256()
    for name in MEASURED:
        top = ROOT / name
        files = [top] if top.is_file() else sorted(top.rglob("*.py"))
        for path in files:
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def shown_command(argv: list[str]) -> str:
    """The command as run, without the options that only say where and how to write."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        name = arg.split("=", 1)[0]
        if skip:
            skip = False
        elif name in ("--note", "--out") and "=" not in arg:
            skip = True
        elif name not in ("--note", "--out", "--append"):
            kept.append(arg)
    return shlex.join(["python", "-m", "bench", *kept])


def parameters(args: argparse.Namespace) -> dict[str, str]:
    """The run's parameters in words."""
    low, high = args.task_seconds
    k = args.time_scale
    chosen = groups(args)
    found: dict[str, str] = {}
    if "load" in chosen:
        found["load runs"] = (
            f"{args.users:,} users at once after a warm-up wave of {warmup(args, 'load')} in "
            f"the same bot process; task time at the fake provider "
            f"{TaskTimes(low, high).describe()} real-life"
        )
    if "long" in chosen:
        users = args.long_users
        found["long runs"] = (
            f"{users:,} users at once after a warm-up wave of {warmup(args, 'long')} in the "
            f"same bot process; task time {TaskTimes(low, high).describe()} real-life; poll "
            f"mode (no PUBLIC_URL) on kie; a punctual 5 s poller would make up to "
            f"{users / 5.0:g} status queries per real-life second, "
            f"{'within' if users / 5.0 <= KIE_STATUS_PER_S else 'above'} kie's "
            f"{KIE_STATUS_PER_S:g}, so the naive baseline keeps to kie's limit"
            + ("" if users / 5.0 <= KIE_STATUS_PER_S else " and falls behind its 5 s")
        )
    learned = [g for g in chosen if g in ("kie-60", "kling-60")]
    if learned:
        users = args.learned_users
        naive_rate = users / 5.0
        within = "within" if naive_rate <= KIE_STATUS_PER_S else "ABOVE"
        warm = sorted({warmup(args, g) for g in learned})
        found["learned-schedule runs"] = (
            f"{' and '.join(learned)}: {users} users at once after a warm-up wave of "
            f"{' or '.join(map(str, warm))} in the same bot process; task time "
            f"{TaskTimes(*LEARNED_SECONDS, 'normal').describe()} real-life; poll mode (no "
            f"PUBLIC_URL); on kie the naive baseline makes {naive_rate:g} status queries per "
            f"real-life second, {within} kie's {KIE_STATUS_PER_S:g}; Kling: the official "
            f"API's fake, model {KLING_MODEL}"
        )
    if "replicas" in chosen:
        mode = "polling" if args.mode == "polling" else "webhook"
        found["replicas runs"] = (
            f"{args.users:,} users at once after a warm-up wave of {warmup(args, 'replicas')}, "
            f"{mode} mode, callbacks {'off' if args.callbacks == 'off' else 'on'}; task time "
            f"{TaskTimes(low, high).describe()} real-life; once on one bot process with SQLite, "
            f"once on {args.replicas} bot processes sharing one PostgreSQL "
            f"{dbcost.server_version()} database (a throwaway server on loopback, fsync off)"
            + (
                "; updates POSTed to the replicas' webhooks in turn, each sent again to the "
                "next one until it answers 200"
                if mode == "webhook"
                else "; one replica polls getUpdates"
            )
        )
    found["time scale"] = (
        f"×{k:g} (POLL_INTERVAL {10 / k:g} s, TASK_TIMEOUT {1200 / k:g} s, naive "
        f"poll every {5 / k:g} s, Telegram flood limit 30 per {1 / k:g} s, kie creates {20:g} per "
        f"{11 / k:g} s; every provider request limit scales alike)"
    )
    found["video"] = "4 KB (the fake's default) but in the big-video check"
    return found


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    given = sys.argv[1:] if argv is None else argv
    return asyncio.run(main_async(parser().parse_args(given), given))


if __name__ == "__main__":
    sys.exit(main())
