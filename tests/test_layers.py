"""The import rules of the layers: nothing below imports upward (read from the source)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
# The Telegram layer: what speaks to users (handlers, views, texts, messages, the web app).
PRESENTATION = (
    "bot.app",
    "bot.web",
    "bot.chat",
)


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def imports(path: Path) -> set[str]:
    """Every module `path` imports, absolute names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def offending(path: Path, banned: tuple[str, ...]) -> list[str]:
    return sorted(
        name
        for name in imports(path)
        if any(name == ban or name.startswith(ban + ".") for ban in banned)
    )


@pytest.mark.parametrize("path", modules("storage"), ids=lambda p: p.name)
def test_storage_imports_nothing_of_the_bot(path: Path) -> None:
    assert offending(path, ("bot", "telegram")) == []


@pytest.mark.parametrize(
    "path", modules("bot/providers") + modules("bot/core"), ids=lambda p: p.name
)
def test_providers_and_the_core_know_no_telegram_engine_or_storage(path: Path) -> None:
    assert offending(path, ("telegram", "bot.engine", "storage", *PRESENTATION)) == []


@pytest.mark.parametrize("path", modules("bot/engine"), ids=lambda p: p.name)
def test_the_engine_speaks_no_telegram(path: Path) -> None:
    assert offending(path, ("telegram", *PRESENTATION)) == []


@pytest.mark.parametrize("path", modules("bot/drafts"), ids=lambda p: p.name)
def test_the_draft_service_knows_no_telegram(path: Path) -> None:
    assert offending(path, ("telegram", *PRESENTATION)) == []


def test_the_presentation_list_names_what_exists() -> None:
    # A module renamed away from this list would leave its rule checking nothing.
    for name in PRESENTATION:
        path = ROOT.joinpath(*name.split("."))
        assert path.is_dir() or path.with_suffix(".py").is_file(), name
