"""`kling-bot check`: the bot token, each backend's key and balance, and PUBLIC_URL."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

import httpx
from rich.console import Console
from rich.table import Table

from bot.cli.common import (
    FAILED,
    OK,
    Masker,
    choose_model,
    positive,
    quiet_logging,
    say,
    settings_for,
)
from bot.config import Settings
from bot.providers.backend import BuildContext
from bot.providers.base import Provider
from bot.providers.errors import ProviderError, ProviderTimeoutError
from bot.providers.http import USER_AGENT
from bot.providers.registry import BACKEND_NAMES, api_root, build_providers

# A check gives up on a server that has not answered after this long (`check --timeout`),
# and recalls on stderr every REMIND_EVERY seconds what it is still waiting for.
CHECK_SECONDS = 15.0
CHECK_CONNECT_SECONDS = 10.0
REMIND_EVERY = 5.0
# Backends whose display label says little on its own.
ROW_NAMES = {"preview": "preview (no AI)"}


@dataclass(frozen=True)
class Row:
    """One line of the check's table."""

    name: str
    ok: bool
    detail: str


def body_of(response: httpx.Response) -> dict[str, object]:
    """The response's JSON object, or an empty one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def host_of(url: str) -> str:
    """Where a URL goes, for people: its host and port, never a user name or password."""
    return urlparse(url).netloc.rpartition("@")[2] or "(no host)"


async def check_telegram(client: httpx.AsyncClient, settings: Settings, seconds: float) -> Row:
    """getMe with the token; neither the token nor the URL holding it is shown."""
    host = host_of(settings.telegram_api_url)
    try:
        response = await client.get(f"{settings.telegram_api_url}/bot{settings.token}/getMe")
    except httpx.TimeoutException:
        return Row("Telegram", False, f"{host} did not answer within {seconds:g} s")
    except httpx.HTTPError as exc:
        return Row("Telegram", False, f"{host} not reachable ({type(exc).__name__})")
    body = body_of(response)
    result = body.get("result")
    if response.is_success and body.get("ok") is True and isinstance(result, dict):
        return Row("Telegram", True, f"@{result.get('username')}")
    description = body.get("description") or f"HTTP {response.status_code}"
    hint = " (check TELEGRAM_BOT_TOKEN)" if response.status_code in (401, 404) else ""
    return Row("Telegram", False, f"{description}{hint}")


def backend_title(name: str) -> str:
    """A backend's name for the check's table."""
    return ROW_NAMES.get(name) or BACKEND_NAMES.get(name, name)


async def check_provider(name: str, provider: Provider, seconds: float) -> Row:
    """The provider's balance, which also proves the key works."""
    label = backend_title(name)
    try:
        return Row(label, True, await provider.balance())
    except NotImplementedError:
        return Row(label, True, "configured (no balance to show)")
    except ProviderTimeoutError as exc:  # not "may have started": a balance starts nothing
        return Row(label, False, f"no complete answer within {seconds:g} s: {exc.message}")
    except ProviderError as exc:
        return Row(label, False, f"{exc.reason.summary}: {exc.message}")
    except Exception as exc:  # a check reports, it does not crash
        return Row(label, False, f"{type(exc).__name__}: {exc}")


async def check_public_url(client: httpx.AsyncClient, settings: Settings, seconds: float) -> Row:
    """Whether `<PUBLIC_URL>/healthz` answers; without PUBLIC_URL the bot polls."""
    if not settings.public_url:
        return Row("PUBLIC_URL", True, "not set: callbacks are off, the bot polls the providers")
    url = f"{settings.public_url}/healthz"
    hint = "is the bot running and is the URL public?"
    try:
        response = await client.get(url)
    except httpx.TimeoutException:
        return Row("PUBLIC_URL", False, f"{url} did not answer within {seconds:g} s; {hint}")
    except httpx.HTTPError as exc:
        return Row("PUBLIC_URL", False, f"{url} not reachable ({type(exc).__name__}); {hint}")
    if response.status_code != 200:
        return Row("PUBLIC_URL", False, f"{url} answered HTTP {response.status_code}; {hint}")
    return Row("PUBLIC_URL", True, f"{url} answers")


def models_row(settings: Settings) -> Row:
    """How many models are offered and which one new drafts use."""
    catalogue = settings.catalogue()
    default = catalogue.default(settings.default_model).id
    return Row("Models", True, f"{len(catalogue.models)} offered; new drafts use {default}")


class Waiting:
    """The network checks in flight: each is announced as it starts, the slow ones recalled."""

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._pending: list[str] = []

    async def on(self, what: str, host: str | None, check: Awaitable[Row]) -> Row:
        """Say what `check` asks of which host, then run it; a check without a host is silent."""
        if host is None:
            return await check
        say(self._masker, f"checking {what} at {host}…")
        self._pending.append(f"{what} at {host}")
        try:
            return await check
        finally:
            self._pending.remove(f"{what} at {host}")

    async def remind(self, every: float) -> None:
        """Every `every` seconds until cancelled, name the checks still waiting for an answer."""
        started = time.monotonic()
        while True:
            await asyncio.sleep(every)
            if self._pending:
                waited = time.monotonic() - started
                say(
                    self._masker,
                    f"still waiting for {', '.join(self._pending)} ({waited:.0f} s so far)",
                )


async def run_checks(settings: Settings, seconds: float, masker: Masker) -> list[Row]:
    """Every check, run at once; each says on stderr where it goes before it waits there."""
    timeout = httpx.Timeout(seconds, connect=min(seconds, CHECK_CONNECT_SECONDS))
    providers = build_providers(settings, BuildContext(settings.data_directory, timeout=timeout))
    headers = {"User-Agent": USER_AGENT}
    waiting = Waiting(masker)
    reminder = asyncio.create_task(waiting.remind(REMIND_EVERY))
    public = host_of(settings.public_url) if settings.public_url else None
    try:
        async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
            rows = await asyncio.gather(
                waiting.on(
                    "Telegram (getMe)",
                    host_of(settings.telegram_api_url),
                    check_telegram(client, settings, seconds),
                ),
                *(
                    waiting.on(
                        f"{backend_title(name)} (balance)",
                        host_of(root) if (root := api_root(settings, name)) else None,
                        check_provider(name, provider, seconds),
                    )
                    for name, provider in providers.items()
                ),
                waiting.on(
                    "PUBLIC_URL (/healthz)", public, check_public_url(client, settings, seconds)
                ),
            )
    finally:
        reminder.cancel()
        await asyncio.gather(*(p.aclose() for p in providers.values()), return_exceptions=True)
    return [*rows, models_row(settings)]


def print_rows(rows: Sequence[Row], masker: Masker) -> None:
    """A table on a terminal, aligned plain lines otherwise."""
    if sys.stdout.isatty():
        table = Table("", "check", "result")
        for row in rows:
            mark = "[green]ok[/green]" if row.ok else "[red]FAIL[/red]"
            table.add_row(mark, row.name, masker(row.detail))
        Console(highlight=False).print(table)
        return
    width = max(len(row.name) for row in rows)
    for row in rows:
        print(f"{'ok' if row.ok else 'FAIL':<4}  {row.name:<{width}}  {masker(row.detail)}")


def run_check(args: argparse.Namespace, masker: Masker) -> int:
    """`kling-bot check`."""
    settings = settings_for(masker, need_bot=True)
    choose_model(settings, None)  # a configuration that offers no model stops the bot too
    quiet_logging(settings)
    rows = asyncio.run(run_checks(settings, args.timeout, masker))
    print_rows(rows, masker)
    failed = [row.name for row in rows if not row.ok]
    if failed:
        say(masker, f"check failed: {', '.join(failed)}")
        return FAILED
    return OK


def add_check(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `check` subcommand's arguments."""
    check = commands.add_parser(
        "check",
        help="test the configuration: Telegram, each backend, PUBLIC_URL",
        description="Test the configuration: the bot token, each backend's key and balance, "
        "and PUBLIC_URL. Exit status: 0 all ok, 1 something failed, 2 configuration errors.",
    )
    check.add_argument(
        "--timeout",
        type=positive,
        default=CHECK_SECONDS,
        metavar="SECONDS",
        help=f"give up on a server that has not answered after this long (default: "
        f"{CHECK_SECONDS:g})",
    )
    check.set_defaults(handler=run_check)
