"""How `generate` shows its progress on stderr: a live bar on a terminal, plain lines in logs."""

from __future__ import annotations

import sys
from typing import Protocol

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from bot.cli.common import PROG
from bot.core.progress import Stage


class Display(Protocol):
    """The core's progress, shown, with an end."""

    def stage(self, stage: Stage, detail: str = "") -> None:
        """A step began (or its detail changed)."""

    def transfer(self, done: int, total: int | None) -> None:
        """Bytes downloaded so far."""

    def finish(self, line: str) -> None:
        """Stop showing progress and print a last line."""

    def close(self) -> None:
        """Stop showing progress; idempotent."""


class PlainDisplay:
    """Short lines on stderr, one per step: for logs and pipes."""

    def __init__(self) -> None:
        self._last = ""

    def stage(self, stage: Stage, detail: str = "") -> None:
        """Print the step if it changed."""
        if stage != self._last:
            self._last = stage
            print(f"{PROG}: {stage}{f' ({detail})' if detail else ''}", file=sys.stderr, flush=True)

    def transfer(self, done: int, total: int | None) -> None:
        """Nothing: the plain output stays short."""

    def finish(self, line: str) -> None:
        """Print the last line."""
        print(f"{PROG}: {line}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Nothing to stop."""


class LiveDisplay:
    """A live spinner/progress bar on stderr with the step, its detail and the elapsed time."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task("starting", total=None, detail="")
        self._progress.start()

    def stage(self, stage: Stage, detail: str = "") -> None:
        """Show the step; the bar pulses until bytes are counted."""
        self._progress.update(self._task, description=str(stage), detail=detail, total=None)

    def transfer(self, done: int, total: int | None) -> None:
        """Show bytes downloaded, with a bar when the size is known."""
        detail = decimal(done) + (f" of {decimal(total)}" if total else "")
        self._progress.update(self._task, completed=done, total=total or None, detail=detail)

    def finish(self, line: str) -> None:
        """Remove the bar and print the last line."""
        self.close()
        self._console.print(f"[green]✓[/green] {line}", highlight=False)

    def close(self) -> None:
        """Remove the bar."""
        self._progress.stop()


def make_display() -> Display:
    """A live display on a terminal, short plain lines otherwise."""
    if sys.stderr.isatty():
        return LiveDisplay(Console(stderr=True))
    return PlainDisplay()
