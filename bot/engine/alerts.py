"""When the bot's owner must hear of a backend: its key or money at once, failures in a row."""

from __future__ import annotations

from collections import Counter

from bot.core.failures import Failure
from bot.engine.reporting import Reporter

# This many tasks of a backend failing in a row, each the service's fault, is worth a message.
STREAK = 3


class FailureWatch:
    """Counts each backend's failures in a row and tells the admins what needs them."""

    def __init__(self, reporter: Reporter, streak: int = STREAK) -> None:
        self._reporter = reporter
        self._streak = streak
        self._in_a_row: Counter[str] = Counter()

    async def failed(self, backend: str, failure: Failure, detail: str | None) -> None:
        """A task of `backend` failed."""
        if failure.needs_owner:
            await self._reporter.alert_admins(backend, failure.value, detail)
            return
        if not failure.service_fault:
            return
        self._in_a_row[backend] += 1
        if self._in_a_row[backend] >= self._streak:
            why = f"{failure.value}: {detail}" if detail else failure.value
            await self._reporter.alert_admins(
                backend, "keeps_failing", why, count=self._in_a_row[backend]
            )

    def worked(self, backend: str) -> None:
        """A task of `backend` was created or delivered: the streak is over."""
        self._in_a_row.pop(backend, None)
