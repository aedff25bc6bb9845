"""The command line: `kling-bot generate` makes one video, `kling-bot check` tests the setup."""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Callable

from bot import __version__
from bot.cli.check import add_check
from bot.cli.common import INTERRUPTED, PROG, USAGE, CliError, Masker, say
from bot.cli.copy import add_copy
from bot.cli.generate import add_generate


def package_version() -> str:
    """The installed package's version (pyproject's); the source's own when not installed."""
    try:
        return importlib.metadata.version("kling-bot")
    except importlib.metadata.PackageNotFoundError:
        return __version__


def build_parser() -> argparse.ArgumentParser:
    """The `kling-bot` command line."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Kling videos from the command line, with the bot's configuration "
        "(environment and .env). Without a command, kling-bot runs the Telegram bot.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {package_version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    add_generate(commands)
    add_check(commands)
    add_copy(commands)
    return parser


Handler = Callable[[argparse.Namespace, Masker], int]


def main(argv: list[str]) -> int:
    """Run a subcommand; 0 ok, 1 failed, 2 usage or configuration error, 130 interrupted."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or argparse's usage message
        return exc.code if isinstance(exc.code, int) else USAGE
    handler: Handler = args.handler
    masker = Masker()
    try:
        return handler(args, masker)
    except CliError as exc:
        for line in exc.lines:
            say(masker, line)
        return exc.status
    except KeyboardInterrupt:
        say(masker, "interrupted")
        return INTERRUPTED
