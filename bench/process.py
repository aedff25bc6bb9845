"""The bot as a child process, so that its memory and CPU time are its own."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


def command(tracker: str, time_scale: float) -> list[str]:
    """`python -m bot` for the real bot in real time, else the benchmark's launcher."""
    if tracker == "real" and time_scale == 1:
        return [sys.executable, "-m", "bot"]
    return [
        sys.executable,
        "-m",
        "bench.botproc",
        "--tracker",
        tracker,
        "--time-scale",
        repr(time_scale),
    ]


class BotProcess:
    """Starts the bot with an environment, logs to a file, stops it with SIGTERM."""

    def __init__(self, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.argv = argv
        self.env = {key: os.environ[key] for key in BASE_ENV if key in os.environ}
        self.env.update(env, PYTHONPATH=str(ROOT), PTB_TIMEDELTA="true")
        self.workdir = workdir
        self.log_path = workdir / "bot.log"
        self.returncode: int | None = None
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        """The process id (the bot must have been started)."""
        assert self._process is not None
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start the process in the work folder (so no `.env` of the repository is read)."""
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    async def stop(self, grace: float = 60.0) -> None:
        """SIGTERM, then SIGKILL if it has not ended within `grace` seconds; idempotent."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                process.kill()
                await process.wait()
        self.returncode = process.returncode

    def said(self, text: str) -> bool:
        """Whether the process's log has a line containing `text` so far."""
        try:
            return text in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def problems(self) -> list[str]:
        """Log lines at ERROR or above, and tracebacks."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        marks = (" ERROR ", " CRITICAL ", "Traceback")
        return [line for line in text.splitlines() if any(mark in line for mark in marks)]
