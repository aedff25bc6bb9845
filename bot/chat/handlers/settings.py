"""/settings: the user's defaults for new drafts and their language; each change saved at once."""

from __future__ import annotations

from telegram import Update

from bot.chat.callback_data import SETTINGS_OPTIONS, SettingsAction, decode_settings
from bot.chat.replies import Context, answer, edit, edit_markup, reply
from bot.chat.services import Services
from bot.chat.texts import LANGUAGES, t
from bot.chat.views.settings import settings_models, settings_screen


class UserSettings:
    """/settings and its buttons."""

    def __init__(self, services: Services) -> None:
        self.s = services

    async def settings(self, update: Update, context: Context) -> None:
        """The user's defaults for new drafts, and their language."""
        user = update.effective_user
        if user is None:
            return
        lang = await self.s.language(user)
        options = await self.s.drafts.default_options(user.id)
        await reply(update, *settings_screen(lang, options, self.s.catalogue))

    async def button(self, update: Update, context: Context) -> None:
        """The /settings buttons: each change is saved at once."""
        query = update.callback_query
        if query is None or query.message is None:
            return
        user = query.from_user
        pressed = decode_settings(query.data)
        lang = await self.s.language(user)
        if pressed is None:
            await answer(query, t(lang, "answer.unknown"))
            return
        options = await self.s.drafts.default_options(user.id)
        chat_id, message_id = query.message.chat.id, query.message.message_id
        bot = self.s.messenger.bot
        if pressed.action in (SettingsAction.MODEL_MENU, SettingsAction.MODEL_GROUP):
            await answer(query)
            menu = settings_models(lang, options.model, self.s.catalogue, pressed.argument)
            await edit_markup(bot, chat_id, message_id, menu)
            return
        if pressed.action is SettingsAction.LANGUAGE:
            if pressed.argument not in LANGUAGES:
                await answer(query, t(lang, "answer.unknown"))
                return
            lang = pressed.argument
            await self.s.users.save_language(user.id, lang)
        elif pressed.action is not SettingsAction.BACK:
            option = SETTINGS_OPTIONS.get(pressed.action)
            changed = (
                await self.s.drafts.change_default(user.id, options, option, pressed.argument)
                if option is not None
                else None
            )
            if changed is None:
                await answer(query, t(lang, "answer.unknown"))
                return
            options = changed
        await answer(query, t(lang, "answer.updated"))
        await edit(bot, chat_id, message_id, *settings_screen(lang, options, self.s.catalogue))
