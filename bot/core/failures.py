"""Why a task failed: one enumeration, stored by value, told in every language."""

from __future__ import annotations

import logging
from enum import StrEnum

log = logging.getLogger(__name__)


class Failure(StrEnum):
    """Every reason a task can end without a video (the value is what the database keeps)."""

    # The backend's owner must act: the key, the money, the firewall.
    AUTH = "auth"
    NO_CREDITS = "no_credits"
    KEY_LIMIT = "key_limit"
    BLOCKED = "blocked"
    # The request or its content.
    INVALID_REQUEST = "invalid_request"
    MODERATION = "moderation"
    GENERATION_FAILED = "generation_failed"
    UNKNOWN_MODEL = "unknown_model"
    # The service.
    BUSY = "busy"
    UNAVAILABLE = "unavailable"
    UNCERTAIN = "uncertain"
    NOT_FOUND = "not_found"
    PROVIDER_ERROR = "provider_error"
    BAD_CALLBACK = "bad_callback"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    EXPIRED = "expired"
    EXPIRED_UNSURE = "expired_unsure"
    # The photo.
    IMAGE_UNREADABLE = "image_unreadable"
    IMAGE_FETCH = "image_fetch"
    IMAGE_TOO_SMALL = "image_too_small"
    IMAGE_SHAPE = "image_shape"
    IMAGE_TOO_LARGE = "image_too_large"
    IMAGE_ANIMATED = "image_animated"

    @classmethod
    def of(cls, value: str | None) -> Failure:
        """The failure a stored value names; an unknown one is a provider error, and logged."""
        if value is None:
            return cls.PROVIDER_ERROR
        try:
            return cls(value)
        except ValueError:
            log.warning("unknown failure reason %r; shown as a provider error", value)
            return cls.PROVIDER_ERROR

    @property
    def needs_owner(self) -> bool:
        """Whether only the bot's owner can mend it (admins are told at once)."""
        return self in _OWNER

    @property
    def service_fault(self) -> bool:
        """Whether it is the service's fault (admins are told when it keeps happening)."""
        return self in _SERVICE

    @property
    def summary(self) -> str:
        """The reason in plain English for operators; image reasons take {smallest}, {longest}."""
        return _SUMMARIES[self]

    @property
    def retry_may_help(self) -> bool:
        """Whether another try of the same task might succeed."""
        return self not in _FINAL


# Users read their language's texts in the chat; these are for whoever runs the bot.
_SUMMARIES = {
    Failure.AUTH: "the key was refused",
    Failure.NO_CREDITS: "no credits or resource packs left",
    Failure.KEY_LIMIT: "the key has reached the spending limit set for it (a kie sub-key's own)",
    Failure.BLOCKED: "the provider's firewall refused this server",
    Failure.INVALID_REQUEST: "the request was refused",
    Failure.MODERATION: "the prompt or image was refused by moderation",
    Failure.GENERATION_FAILED: "the provider could not generate the video",
    Failure.UNKNOWN_MODEL: "the model is not offered",
    Failure.BUSY: "the provider is busy (rate limit); try again later",
    Failure.UNAVAILABLE: "the provider is unavailable",
    Failure.UNCERTAIN: "no clear answer: the task may or may not have started",
    Failure.NOT_FOUND: "the provider does not know the task",
    Failure.PROVIDER_ERROR: "the provider answered with an error",
    Failure.BAD_CALLBACK: "the provider's callback could not be verified",
    Failure.TIMEOUT: "no video within the time allowed",
    Failure.INTERRUPTED: "the bot stopped while the task was being created",
    Failure.EXPIRED: "the video was no longer kept by the provider when it could be sent",
    Failure.EXPIRED_UNSURE: (
        "the bot stopped while sending the video, and the provider no longer keeps it "
        "(the user may have it)"
    ),
    Failure.IMAGE_UNREADABLE: "is not a JPEG, PNG or WebP image that can be read",
    Failure.IMAGE_FETCH: "could not be fetched",
    Failure.IMAGE_TOO_SMALL: "is too small (under {smallest} px on a side)",
    Failure.IMAGE_SHAPE: "is too long and narrow (more than {longest}:1)",
    Failure.IMAGE_TOO_LARGE: "has too many pixels to decode safely",
    Failure.IMAGE_ANIMATED: "is an animation (GIF), not a still image",
}

_OWNER = frozenset({Failure.AUTH, Failure.NO_CREDITS, Failure.KEY_LIMIT, Failure.BLOCKED})
_SERVICE = frozenset(
    {
        Failure.UNAVAILABLE,
        Failure.UNCERTAIN,
        Failure.NOT_FOUND,
        Failure.PROVIDER_ERROR,
        Failure.TIMEOUT,
    }
)
# Failures a second try cannot mend: the photo itself, or a model no longer offered.
_FINAL = frozenset(
    {
        Failure.IMAGE_UNREADABLE,
        Failure.UNKNOWN_MODEL,
        Failure.IMAGE_TOO_SMALL,
        Failure.IMAGE_SHAPE,
        Failure.IMAGE_TOO_LARGE,
        Failure.IMAGE_ANIMATED,
    }
)
