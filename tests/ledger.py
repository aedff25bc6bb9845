"""Money figures the tests record and print in the summary: paid creates and lost videos."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Entry:
    """One scenario: how often the user pressed Generate and what the provider charged for."""

    scenario: str
    presses: int
    paid_creates: int
    undelivered: int
    identifiable: bool


@dataclass
class Ledger:
    """Entries recorded during the run, printed by conftest's terminal summary."""

    entries: list[Entry] = field(default_factory=list)

    def record(
        self,
        scenario: str,
        *,
        presses: int,
        paid_creates: int,
        undelivered: int,
        identifiable: bool,
    ) -> None:
        """Add one scenario's figures."""
        self.entries.append(Entry(scenario, presses, paid_creates, undelivered, identifiable))

    def lines(self) -> list[str]:
        """The figures as a table, with the totals the guarantees are about."""
        if not self.entries:
            return []
        rows = [
            f"{e.scenario:<40} {e.paid_creates / e.presses:>6.2f} "
            f"{e.undelivered if e.identifiable else '-':>12}"
            for e in self.entries
        ]
        presses = sum(e.presses for e in self.entries)
        paid = sum(e.paid_creates for e in self.entries)
        lost = sum(e.undelivered for e in self.entries if e.identifiable)
        return [
            f"{'scenario':<40} {'paid/press':>6} {'paid, undelivered (identifiable)':>12}",
            *rows,
            f"total: {paid} paid creates for {presses} Generate presses "
            f"({paid / presses:.2f} per press); {lost} paid-but-undelivered identifiable tasks",
        ]


MONEY = Ledger()
