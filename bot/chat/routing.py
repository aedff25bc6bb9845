"""Which handler takes which update, in the order python-telegram-bot tries them; the menu."""

from __future__ import annotations

import logging

from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.chat.handlers.access import Access
from bot.chat.handlers.admin import Admin
from bot.chat.handlers.drafts import Drafts
from bot.chat.handlers.fallback import Fallback
from bot.chat.handlers.help import Help
from bot.chat.handlers.photos import Photos
from bot.chat.handlers.settings import UserSettings
from bot.chat.handlers.status import Status
from bot.chat.services import Services
from bot.chat.texts import LANGUAGES, t

log = logging.getLogger(__name__)

COMMANDS = ("start", "help", "status", "settings", "cancel")
ADMIN_COMMANDS = ("balance", "stats")
# A GIF is an image to Telegram's filters (image/gif), but no still photo.
_ANIMATIONS = filters.ANIMATION | filters.Document.GIF
# Every message the other handlers leave, of any kind Telegram has or will have, bar commands
# (the commands' own handlers come later) and service messages (someone joined, a pin).
_ANYTHING_ELSE = ~filters.COMMAND & ~filters.StatusUpdate.ALL


def attach(application: Application, services: Services) -> None:  # type: ignore[type-arg]
    """Attach the guard, every feature's handlers and the error handler."""
    access, photos, drafts = Access(services), Photos(services), Drafts(services)
    status, settings, fallback = Status(services), UserSettings(services), Fallback(services)
    help_, admin = Help(services), Admin(services)
    application.add_handler(TypeHandler(Update, access.guard), group=-1)
    application.add_handler(MessageHandler(_ANIMATIONS, photos.animation))
    application.add_handler(MessageHandler(filters.PHOTO | filters.Document.IMAGE, photos.image))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, drafts.text))
    application.add_handler(MessageHandler(_ANYTHING_ELSE, fallback.not_image))
    application.add_handler(CallbackQueryHandler(drafts.button, pattern=r"^d:"))
    application.add_error_handler(access.error)
    commands = {
        "start": help_.start,
        "help": help_.help,
        "status": status.status,
        "settings": settings.settings,
        "cancel": drafts.cancel,
        "balance": admin.balance,
        "stats": admin.stats,
    }
    for name in COMMANDS + ADMIN_COMMANDS:
        application.add_handler(CommandHandler(name, commands[name]))
    application.add_handler(CallbackQueryHandler(status.task_button, pattern=r"^t:"))
    application.add_handler(CallbackQueryHandler(status.page_button, pattern=r"^l:"))
    application.add_handler(CallbackQueryHandler(settings.button, pattern=r"^s:"))
    application.add_handler(CallbackQueryHandler(fallback.unknown_button))
    # In groups a command may be meant for another bot: only private chats are answered.
    unknown = filters.COMMAND & filters.ChatType.PRIVATE
    application.add_handler(MessageHandler(unknown, fallback.unknown_command))


async def set_commands(application: Application, admins: frozenset[int]) -> None:  # type: ignore[type-arg]
    """The command menu in each language; admins also see theirs."""
    bot = application.bot
    try:
        for lang in LANGUAGES:
            commands = [BotCommand(name, t(lang, f"commands.{name}")) for name in COMMANDS]
            await bot.set_my_commands(commands, language_code=None if lang == "en" else lang)
        for admin in admins:
            names = COMMANDS + ADMIN_COMMANDS
            commands = [BotCommand(name, t("en", f"commands.{name}")) for name in names]
            await bot.set_my_commands(commands, scope=BotCommandScopeChat(admin))
    except TelegramError as exc:
        log.warning("could not set the command menu: %s", exc)
