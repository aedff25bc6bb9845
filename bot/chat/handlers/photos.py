"""Photos and image files in: checked, then opened as drafts (albums join one)."""

from __future__ import annotations

from telegram import Update

from bot.chat.photos import TelegramPhotos
from bot.chat.replies import Context, reply
from bot.chat.services import Services
from bot.chat.texts import t
from bot.chat.views.refusals import image_refusal
from bot.core.images import ImageError, size_problem
from bot.drafts.service import Photo

# The Bot API's getFile serves files up to this size.
GETFILE_LIMIT = 20 * 1024 * 1024


class Photos:
    """A photo or image file opens a draft; a GIF is explained."""

    def __init__(self, services: Services) -> None:
        self.s = services

    async def image(self, update: Update, context: Context) -> None:
        """A photo or an image file: open a draft (or ask for the prompt); albums join one."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        lang = await self.s.language(user)
        if message.photo:
            largest = message.photo[-1]
            problem = size_problem(largest.width, largest.height)
            if problem is not None:
                await reply(update, image_refusal(lang, problem))
                return
            file_id = largest.file_id
        else:
            assert message.document is not None
            if (message.document.file_size or 0) > GETFILE_LIMIT:
                await reply(update, t(lang, "file_too_big"))
                return
            try:
                await TelegramPhotos(context.bot).check(message.document.file_id)
            except ImageError as exc:
                await reply(update, image_refusal(lang, exc.reason))
                return
            file_id = message.document.file_id
        photo = Photo(user.id, message.chat_id, message.message_id, file_id, message.media_group_id)
        draft = await self.s.drafts.open(photo, message.caption or "", lang)
        if draft is not None:
            await self.s.draft_messages.show_new(draft)

    async def animation(self, update: Update, context: Context) -> None:
        """GIFs, sent as animations or as files: explain that a still photo is needed."""
        await reply(update, t(await self.s.language(update.effective_user), "animation"))
