"""The bot process seen from /proc (memory, peak memory, CPU time) and the machine it runs on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024


@dataclass(frozen=True)
class Usage:
    """One reading of a process: resident and peak resident bytes, CPU seconds (user + system)."""

    rss: int
    hwm: int
    cpu: float


def usage(pid: int) -> Usage:
    """Read VmRSS, VmHWM and utime + stime of `pid` (all its threads)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    # The command name may contain spaces and brackets; the fields after its last ")" do not.
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / CLOCK_TICKS
    return Usage(rss=fields.get("VmRSS", 0), hwm=fields.get("VmHWM", 0), cpu=cpu)


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: write 5 to clear_refs); False if refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Sampler:
    """Samples a process's RSS (and a caller's gauge, e.g. tasks in flight) at a fixed period."""

    pid: int
    gauge: Callable[[], int] = lambda: 0
    period: float = 0.1
    peak_rss: int = 0
    peak_gauge: int = 0
    rss_at_peak_gauge: int = 0
    samples: list[tuple[float, int, int]] = field(default_factory=list)

    def sample(self) -> None:
        """Take one sample now."""
        with contextlib.suppress(OSError):
            rss = usage(self.pid).rss
            value = self.gauge()
            self.samples.append((time.monotonic(), rss, value))
            self.peak_rss = max(self.peak_rss, rss)
            if value >= self.peak_gauge:
                self.peak_gauge, self.rss_at_peak_gauge = value, rss

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(self.period)


@dataclass
class LoopLag:
    """How late this process's event loop wakes a timer: the fakes' own latency."""

    period: float = 0.01
    lags: list[float] = field(default_factory=list)

    async def run(self) -> None:
        """Measure until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.period)
            self.lags.append(loop.time() - start - self.period)


def own_cpu() -> float:
    """CPU seconds this process (the benchmark and its fakes) used so far."""
    times = os.times()
    return times.user + times.system


def machine() -> dict[str, str]:
    """CPU model and count, memory, Python and OS of this machine."""
    cpuinfo = _read("/proc/cpuinfo")
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown",
    )
    memory = next(
        (line.split()[1] for line in _read("/proc/meminfo").splitlines() if "MemTotal" in line),
        "0",
    )
    release = dict(
        line.split("=", 1) for line in _read("/etc/os-release").splitlines() if "=" in line
    )
    usable = len(os.sched_getaffinity(0))
    return {
        "cpu": f"{model}, {usable} usable of {os.cpu_count()} logical CPUs",
        "memory": f"{int(memory) / 1024 / 1024:.1f} GiB",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "os": f"{release.get('PRETTY_NAME', platform.system()).strip(chr(34))}, "
        f"kernel {platform.release()}",
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
