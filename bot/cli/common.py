"""What every command shares: exit codes, errors, masked output, the settings it runs with."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable

from bot.config import ConfigError, Settings, load_settings, unoffered
from bot.logs import RedactingFormatter, configure_logging
from bot.providers.catalogue import ModelSpec

PROG = "kling-bot"
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


class CliError(Exception):
    """Ends the command with `status` after printing `lines` to stderr."""

    status = FAILED

    def __init__(self, *lines: str) -> None:
        super().__init__(*lines)
        self.lines = lines


class UsageError(CliError):
    """Bad arguments or configuration: nothing was paid for."""

    status = USAGE


class Masker:
    """Masks secret values (and anything shaped like a bot token) in text for the terminal."""

    def __init__(self) -> None:
        self._formatter = RedactingFormatter("%(message)s", ())

    def learn(self, secrets: Iterable[str]) -> None:
        """Mask these values too."""
        self._formatter = RedactingFormatter("%(message)s", secrets)

    def __call__(self, text: str) -> str:
        return self._formatter.redact(text)


def say(masker: Masker, line: str) -> None:
    """One line to stderr, prefixed with the program's name."""
    print(f"{PROG}: {masker(line)}", file=sys.stderr, flush=True)


def settings_for(masker: Masker, *, need_bot: bool) -> Settings:
    """The bot's settings (environment and `.env`); UsageError with the bot's own lines."""
    try:
        settings = load_settings(need_bot=need_bot)
    except ConfigError as exc:
        raise UsageError(*exc.lines) from None
    masker.learn(settings.secrets())
    return settings


def quiet_logging(settings: Settings) -> None:
    """Log warnings and errors only, unless LOG_LEVEL asks for more (or less)."""
    level = settings.log_level if "log_level" in settings.model_fields_set else logging.WARNING
    configure_logging(settings.secrets(), level=level, form=settings.log_format)


def choose_model(settings: Settings, requested: str | None) -> ModelSpec:
    """The requested model, else DEFAULT_MODEL, else the first; UsageError if not offered."""
    catalogue = settings.catalogue()
    if not catalogue.models:
        backends = ", ".join(settings.configured_backends())
        raise UsageError(f"the configured backends ({backends}) offer no models")
    model_id = requested or settings.default_model
    if model_id is None:
        return catalogue.default()
    where = f"--model {model_id}" if requested else f"DEFAULT_MODEL={model_id}"
    problem = unoffered(settings, model_id, where)
    if problem is not None:
        raise UsageError(problem)
    spec = catalogue.get(model_id)
    assert spec is not None
    return spec


def positive(text: str) -> float:
    """A number above 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value
