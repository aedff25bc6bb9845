"""Why the bot said no: an image it cannot use, a task it would not start."""

from __future__ import annotations

from bot.chat.texts import t
from bot.config import Settings
from bot.core.failures import Failure
from bot.core.images import LONGEST, SMALLEST
from storage import Refusal

# What to tell for each reason an image is refused (anything else: "not_image").
_INTAKE_TEXTS = {
    Failure.IMAGE_TOO_SMALL: "too_small",
    Failure.IMAGE_SHAPE: "bad_shape",
    Failure.IMAGE_TOO_LARGE: "image_too_large",
    Failure.IMAGE_ANIMATED: "animation",
    Failure.IMAGE_FETCH: "fetch_failed",
}


def image_refusal(lang: str, reason: Failure) -> str:
    """What to tell a user whose image was refused for `reason` (an `ImageError` reason)."""
    key = _INTAKE_TEXTS.get(reason, "not_image")
    return t(lang, key, smallest=SMALLEST, longest=LONGEST)


def claim_refusal(lang: str, refusal: Refusal, settings: Settings) -> str:
    """Why Generate (or Retry) made no task, in the user's language."""
    if refusal is Refusal.ACTIVE_LIMIT:
        return t(lang, "answer.active_limit", limit=settings.max_active_tasks_per_user)
    if refusal is Refusal.DAILY_LIMIT:
        return t(lang, "answer.daily_limit", limit=settings.daily_tasks_per_user)
    return t(lang, "answer.submitted")
