"""`kling-bot` / `python -m bot`: run the bot; `kling-bot generate|check`: the command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from pydantic import ValidationError

from bot.config import Settings
from bot.logs import RedactingFormatter, configure_logging
from bot.providers.registry import all_model_ids


def load_settings() -> Settings | list[str]:
    """The settings, or the lines that say what to fix."""
    try:
        settings = Settings()
    except ValidationError as exc:
        return [
            f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        ]
    problems = settings.problems()
    if not problems and settings.default_model:
        offered = settings.catalogue()
        if offered.get(settings.default_model) is None:
            known = ", ".join(spec.id for spec in offered.models)
            hint = "" if settings.default_model in all_model_ids() else " (unknown model)"
            problems.append(
                f"DEFAULT_MODEL={settings.default_model} is not offered{hint}; "
                f"choose one of: {known}"
            )
    return problems or settings


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the bot, or a command-line tool (`generate`, `check`)."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        from bot.cli import main as cli

        return cli(args)
    return run_bot()


def configured(prog: str) -> Settings | None:
    """The settings with logging set up, or None after saying on stderr what to fix."""
    loaded = load_settings()
    if isinstance(loaded, list):
        for line in loaded:
            print(f"{prog}: {line}", file=sys.stderr)
        return None
    configure_logging(loaded.secrets(), level=loaded.log_level, form=loaded.log_format)
    return loaded


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
