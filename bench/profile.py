"""Sample the bot with py-spy while it works, and name the functions that cost the most."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

RATE = 200  # samples per second


@dataclass(frozen=True)
class Hotspot:
    """A function and its share of the samples: own (at the top of the stack) and inclusive."""

    name: str
    own: float
    inclusive: float


class Profiler:
    """`py-spy record --format raw` attached to a pid; collapsed stacks to a file."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid = pid
        self.out = out
        self._process: asyncio.subprocess.Process | None = None

    @staticmethod
    def available() -> bool:
        """Whether py-spy is on PATH or beside this Python."""
        return py_spy() is not None

    async def start(self) -> None:
        """Attach to the process."""
        binary = py_spy()
        assert binary is not None
        self._process = await asyncio.create_subprocess_exec(
            binary,
            "record",
            "--pid",
            str(self.pid),
            "--format",
            "raw",
            "--rate",
            str(RATE),
            "--nonblocking",
            "--gil",
            "--output",
            str(self.out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def stop(self) -> None:
        """Detach and write the samples."""
        if self._process is None or self._process.returncode is not None:
            return
        self._process.send_signal(signal.SIGINT)
        await asyncio.wait_for(self._process.wait(), 60)


def py_spy() -> str | None:
    """The py-spy binary, if installed."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def hotspots(collapsed: Path, top: int = 15, under: str = "") -> tuple[int, list[Hotspot]]:
    """The `top` functions by own samples in a collapsed-stack file, and the sample count.

    With `under`, only stacks passing through a frame containing that text count.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_short(frame) for frame in stack.split(";")]
        if under and not any(under in frame for frame in frames):
            continue
        count = int(count_text)
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    spots = [
        Hotspot(name, count / total, inclusive[name] / total)
        for name, count in own.most_common(top)
    ]
    return total, spots


def top_inclusive(collapsed: Path, names: list[str]) -> dict[str, float]:
    """The inclusive share of each frame whose text contains one of `names`."""
    total = 0
    hits: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        for name in names:
            if name in stack:
                hits[name] += count
    return {name: hits[name] / total if total else 0.0 for name in names}


def _short(frame: str) -> str:
    # py-spy names a frame "Class.function (path/relative/to/sys.path.py:line)"; drop the line.
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rstrip(')').rpartition(':')[0] or where.rstrip(')')})"
