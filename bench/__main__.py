"""`python -m bench`: the load benchmark; prints the results and writes docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import bigvideo, load, report, tick
from bench.load import Mode, Scenario
from bench.measure import machine
from bench.profile import Profiler
from bench.results import RunResult, summarize
from bench.targets import evaluate

ROOT = Path(__file__).parents[1]


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
    p.add_argument("--users", type=int, default=1000, help="users at once (default 1000)")
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
        help="also run the naive tracker (in the first mode) for each callback setting",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=5.0,
        help="play real life K times faster: POLL_INTERVAL, task times, flood and create "
        "limits (default 5)",
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


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    """The runs: each mode × callback setting, then the baseline."""
    modes: list[Mode] = ["polling", "webhook"] if args.mode == "both" else [args.mode]
    hooks = {"both": [True, False], "on": [True], "off": [False]}[args.callbacks]
    common = {"users": args.users, "task_seconds": args.task_seconds, "time_scale": args.time_scale}
    runs = [Scenario(mode=m, callbacks=c, **common) for m in modes for c in hooks]
    if args.baseline:
        runs += [Scenario(mode=modes[0], callbacks=c, tracker="naive", **common) for c in hooks]
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
    failed = any(r.exactly_one != r.users for r in results)
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
    return {
        "users at once": f"{args.users:,}",
        "task time at the fake provider": f"{low:g}–{high:g} s real-life, spread evenly"
        if low != high
        else f"{low:g} s real-life",
        "time scale": f"×{k:g} (POLL_INTERVAL {10 / k:g} s, TASK_TIMEOUT {1200 / k:g} s, naive "
        f"poll every {5 / k:g} s, Telegram flood limit {30 * k:g}/s, kie creates {20:g} per "
        f"{10 / k:g} s)",
        "video": "4 KB (the fake's default) in the load runs",
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    given = sys.argv[1:] if argv is None else argv
    return asyncio.run(main_async(parser().parse_args(given), given))


if __name__ == "__main__":
    sys.exit(main())
