"""`kling-bot` / `python -m bot`: run the bot; `kling-bot generate|check`: the command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from bot.config import ConfigError, Settings, load_settings
from bot.logs import RedactingFormatter, configure_logging


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the bot, or a command-line tool (`generate`, `check`)."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        from bot.cli import main as cli

        return cli(args)
    return run_bot()


def configured(prog: str) -> Settings | None:
    """The settings with logging set up, or None after saying on stderr what to fix."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        for line in exc.lines:
            print(f"{prog}: {line}", file=sys.stderr)
        return None
    configure_logging(settings.secrets(), level=settings.log_level, form=settings.log_format)
    return settings


def run_bot() -> int:
    """Run the bot; exit status 2 when the configuration is incomplete or refused."""
    settings = configured("kling-bot")
    if settings is None:
        return 2
    from bot.app import StartupError, run

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run(settings))
    except StartupError as exc:
        if settings.log_format == "json":  # a log collector reads stderr: one JSON line
            logging.getLogger("bot").error("kling-bot: %s", exc)
        else:
            masked = RedactingFormatter("%(message)s", settings.secrets()).redact(str(exc))
            print(f"kling-bot: {masked}", file=sys.stderr)
        return 2
    except Exception:
        # Python's own report of a crash would print the traceback unmasked.
        logging.getLogger("bot").critical("kling-bot stopped by an unexpected error", exc_info=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
