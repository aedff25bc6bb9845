"""Wiring: one process with the database, providers, engine, Telegram polling and web app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from contextlib import AsyncExitStack
from typing import Any

import httpx
from telegram import Update
from telegram.error import BadRequest, InvalidToken, NetworkError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    Updater,
)

from bot.chat.draft_messages import DraftMessages
from bot.chat.limiter import FloodLimiter
from bot.chat.messenger import PROGRESS_INTERVAL, Messenger
from bot.chat.photos import TelegramPhotos
from bot.chat.routing import attach, set_commands
from bot.chat.sending import TelegramRecipient
from bot.chat.services import Services
from bot.chat.updates import POLLING_LOCK, OnceApplication, UpdateLedger, lead_polling
from bot.chat.upload import VideoUploader
from bot.config import Settings
from bot.drafts.service import ALBUM_WAIT, DraftService
from bot.engine.alerts import FailureWatch
from bot.engine.deliver import RETRY_DELAY, Deliverer
from bot.engine.gate import local_gates, shared_gates
from bot.engine.leases import RENEWALS_PER_LEASE, Leases
from bot.engine.submit import Submitter
from bot.engine.timing import Timings
from bot.engine.tracker import MAX_SLEEP, Tracker
from bot.providers.backend import BuildContext
from bot.providers.http import USER_AGENT
from bot.providers.registry import build_providers
from bot.web import (
    WEBHOOK_PATH,
    WebServer,
    build_web_app,
    listen,
    server_config,
    webhook_secret,
)
from storage import (
    ChatRepository,
    Dialect,
    DraftRepository,
    TaskRepository,
    TimingRepository,
    UserSettingsRepository,
    open_database,
)
from storage.backends import BackendNotes
from storage.database import Database
from storage.rates import RateSlots
from storage.updates import UpdateRepository

log = logging.getLogger(__name__)

ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
# A request refused for flooding is tried again this many times, after the wait Telegram asks.
FLOOD_RETRIES = 3
# With callbacks on, safety-net polls come this many POLL_INTERVALs apart.
CALLBACK_WAIT = 30


class StartupError(Exception):
    """The bot cannot start, for a reason one line explains (and that line holds no secret)."""


def telegram_refusal(exc: BaseException, api_url: str) -> str | None:
    """What a failed Bot API call at start-up means, or None if `exc` is something else."""
    if isinstance(exc, InvalidToken):
        # Its message quotes the whole token.
        return (
            f"the Bot API at {api_url} refused TELEGRAM_BOT_TOKEN; "
            "set the token @BotFather gave you."
        )
    if isinstance(exc, NetworkError) and not isinstance(exc, BadRequest):  # TimedOut too
        return (
            f"cannot reach the Bot API at {api_url} ({exc.message}); "
            "check the network and TELEGRAM_API_URL."
        )
    return None


def build_application(settings: Settings, db: Database) -> Application:  # type: ignore[type-arg]
    """A PTB application pointed at TELEGRAM_API_URL, with flood control (shared by every
    replica on PostgreSQL)."""
    api = settings.telegram_api_url
    gates = local_gates if db.dialect is Dialect.SQLITE else shared_gates(RateSlots(db))
    limiter = FloodLimiter(gates, max_retries=FLOOD_RETRIES)
    builder = (
        ApplicationBuilder()
        .token(settings.token)
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .rate_limiter(limiter)
        .concurrent_updates(True)
        .application_class(OnceApplication)
    )
    if settings.telegram_webhook:
        builder = builder.updater(None)  # updates come through our web app
    return builder.build()


class KlingBot:
    """Starts and stops every part in order; `stop()` is idempotent."""

    def __init__(
        self,
        settings: Settings,
        *,
        provider_transport: httpx.AsyncBaseTransport | None = None,
        provider_timeout: httpx.Timeout | None = None,
        album_wait: float = ALBUM_WAIT,
        progress_interval: float = PROGRESS_INTERVAL,
        tracker_class: type[Tracker] = Tracker,
    ) -> None:
        self.settings = settings
        # The benchmark swaps in a naive tracker to compare against.
        self._tracker_class = tracker_class
        self._progress_interval = progress_interval
        self._provider_transport = provider_transport
        self._provider_timeout = provider_timeout
        self._album_wait = album_wait
        self._stack = AsyncExitStack()
        self._socket: socket.socket | None = None
        self._server: WebServer | None = None
        self._server_task: asyncio.Task[None] | None = None
        self.application: Application | None = None  # type: ignore[type-arg]
        self.services: Services | None = None
        self.http_port: int | None = None

    async def __aenter__(self) -> KlingBot:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open the database, build the services, resume tasks, start polling and the web app."""
        try:
            await self._start()
        except BaseException as exc:
            await self.stop()
            refusal = telegram_refusal(exc, self.settings.telegram_api_url)
            if refusal is not None:
                raise StartupError(refusal) from exc
            raise

    async def _start(self) -> None:
        settings, stack = self.settings, self._stack
        # Taken first, so that a busy port stops the bot before it talks to anyone.
        try:
            self._socket = listen(settings.http_host, settings.http_port)
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {settings.http_host}:{settings.http_port} ({exc.strerror}); "
                "set HTTP_HOST and HTTP_PORT to a free address."
            ) from exc
        stack.callback(self._socket.close)
        db = await stack.enter_async_context(
            open_database(settings.database, settings.database_path)
        )
        context = BuildContext(
            settings.data_directory, self._provider_transport, self._provider_timeout
        )
        providers = build_providers(settings, context)
        for provider in providers.values():
            stack.push_async_callback(provider.aclose)
        downloads = httpx.AsyncClient(
            timeout=httpx.Timeout(120.0, connect=15.0),
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
        )
        stack.push_async_callback(downloads.aclose)
        catalogue = settings.catalogue()
        application = build_application(settings, db)
        assert isinstance(application, OnceApplication)
        ledger = application.ledger = UpdateLedger(UpdateRepository(db))
        self.application = application
        tasks = TaskRepository(db)
        chats = ChatRepository(db, shared=db.dialect is not Dialect.SQLITE)
        timings = Timings(TimingRepository(db), settings.poll_interval)
        await timings.load()
        messenger = Messenger(
            application.bot,
            catalogue,
            chats,
            settings.task_timeout,
            self._progress_interval,
            admins=settings.admin_user_ids,
            timings=timings,
        )
        uploader = VideoUploader(application.bot)
        leases = Leases(tasks, settings.poll_interval)
        # One process on SQLite; on PostgreSQL rate limits hold across every replica.
        sole = db.dialect is Dialect.SQLITE
        gates = local_gates if sole else shared_gates(RateSlots(db))
        deliverer = Deliverer(
            tasks,
            messenger,
            TelegramRecipient(messenger, uploader),
            downloads,
            leases,
            local_roots=tuple(root for p in providers.values() for root in p.local_roots),
            retry_delay=min(RETRY_DELAY, 30 * settings.poll_interval),
            providers=providers,
        )
        # With callbacks on, polls are a safety net for lost callbacks, this far apart.
        callback_wait = (
            min(settings.task_timeout / 2, CALLBACK_WAIT * settings.poll_interval)
            if settings.public_url
            else None
        )
        watch = FailureWatch(messenger)
        tracker = self._tracker_class(
            tasks,
            providers,
            deliverer,
            messenger,
            timings=timings,
            poll_interval=settings.poll_interval,
            task_timeout=settings.task_timeout,
            callback_wait=callback_wait,
            watch=watch,
            # Several replicas share PostgreSQL: leases end only when they run out.
            sole=sole,
            gates=gates,
            # Another replica's task whose lease ran out is seen within a renewal period.
            max_sleep=MAX_SLEEP if sole else leases.length / RENEWALS_PER_LEASE,
            notes=BackendNotes(db),
        )
        submitter = Submitter(
            TelegramPhotos(application.bot),
            tasks,
            providers,
            catalogue,
            tracker,
            messenger,
            poll_interval=settings.poll_interval,
            public_url=settings.public_url,
            retry_base=min(1.0, settings.poll_interval),
            watch=watch,
            leases=leases,
            gates=gates,
        )
        tracker.hand_submissions_to(submitter.resume)
        users = UserSettingsRepository(db)
        drafts = DraftRepository(db)
        draft_messages = DraftMessages(application.bot, catalogue, drafts)
        draft_service = DraftService(
            settings,
            catalogue,
            drafts,
            tasks,
            users,
            submitter,
            draft_messages,
            album_wait=self._album_wait,
        )
        self.services = Services(
            settings=settings,
            db=db,
            catalogue=catalogue,
            providers=providers,
            drafts=draft_service,
            draft_messages=draft_messages,
            tasks=tasks,
            users=users,
            chats=chats,
            messenger=messenger,
            tracker=tracker,
            submitter=submitter,
            timings=timings,
        )
        attach(application, self.services)

        await application.initialize()
        stack.push_async_callback(application.shutdown)
        await set_commands(application, settings.admin_user_ids)
        await application.start()
        draft_service.start()
        stack.push_async_callback(draft_service.close)
        ledger.start(application.redo)
        stack.push_async_callback(ledger.close)
        stack.push_async_callback(application.stop)
        stack.push_async_callback(submitter.stop)
        await tracker.start()
        stack.push_async_callback(tracker.stop)
        if settings.telegram_webhook:
            await self._start_web(build_web_app(self.services, application))
            url = f"{settings.public_url}{WEBHOOK_PATH}"
            try:
                await application.bot.set_webhook(
                    url,
                    secret_token=webhook_secret(settings.token),
                    allowed_updates=ALLOWED_UPDATES,
                )
            except BadRequest as exc:
                raise StartupError(
                    f"Telegram refused the webhook {url} ({exc.message}); check PUBLIC_URL."
                ) from exc
        else:
            await self._start_web(build_web_app(self.services))
            updater = application.updater
            assert updater is not None

            async def start_polling() -> None:
                await updater.start_polling(allowed_updates=ALLOWED_UPDATES, timeout=10)

            # One process polls at a time (a Bot API rule); on SQLite it is always this one,
            # and its first start happens here, so a refusal stops the start.
            held = await db.try_hold(POLLING_LOCK)
            if held is not None:
                await start_polling()
            stack.push_async_callback(stop_polling, updater)
            leading = asyncio.create_task(
                lead_polling(db, application, start_polling, held), name="lead-polling"
            )
            stack.push_async_callback(stop_task, leading)
        log.info(
            "kling-bot started: models %s; web app on port %s",
            ", ".join(spec.id for spec in catalogue.models),
            self.http_port,
        )

    async def _start_web(self, app: Any) -> None:
        config = server_config(app, self.settings.http_host, self.settings.http_port)
        self._server = server = WebServer(config)
        assert self._socket is not None
        self._server_task = asyncio.create_task(server.serve([self._socket]), name="web")
        self._stack.push_async_callback(self._stop_web)
        while not server.started:
            if self._server_task.done():
                self._server_task.result()
                raise RuntimeError(f"the web app could not listen on port {config.port}")
            await asyncio.sleep(0.01)
        self.http_port = server.servers[0].sockets[0].getsockname()[1]

    async def _stop_web(self) -> None:
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            await self._server_task

    async def stop(self) -> None:
        """Stop taking updates, finish work in flight, close everything."""
        await self._stack.aclose()


async def stop_polling(updater: Updater) -> None:
    """Stop taking updates, if this process was."""
    if updater.running:
        await updater.stop()


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def run(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with KlingBot(settings):
        await stop.wait()
        log.info("stopping")
