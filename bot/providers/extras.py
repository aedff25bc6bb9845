"""Optional parts of the install (pyproject's extras): whether one is there, and how to add it."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec


@dataclass(frozen=True)
class Extra:
    """An extra of pyproject.toml, known to be installed by one module it brings."""

    name: str
    module: str
    # What it brings, for people: "PyAV".
    title: str

    def installed(self) -> bool:
        """Whether its module can be imported; found without importing it (PyAV is heavy)."""
        return find_spec(self.module) is not None

    @property
    def command(self) -> str:
        """The command that installs it, into an install from PyPI or from a checkout."""
        name = self.name
        return f'pip install "kling-bot[{name}]" (from a checkout: pip install ".[{name}]")'

    def needed_by(self, what: str) -> str:
        """The line that says `what` cannot work without this extra."""
        return f"{what} needs {self.title}, which the default install leaves out: {self.command}."


# The preview backend renders its videos with PyAV (about 107 MB installed, 36 MB to download).
PREVIEW = Extra(name="preview", module="av", title="PyAV")
