"""Errors of provider API calls; each knows whether a retry can help and what to tell users."""

from __future__ import annotations

from typing import ClassVar

from bot.core.failures import Failure


class ProviderError(Exception):
    """Root of every provider error."""

    reason: ClassVar[Failure] = Failure.PROVIDER_ERROR
    retryable: ClassVar[bool] = False
    # True only where the provider surely started nothing: a refusal it documents as dropping
    # the request, or a connection that failed before the request left. Anything else after
    # the request left may follow an accepted (paid) task.
    started_nothing: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: int | str | None = None,
        started_nothing: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        if started_nothing is not None:
            self.started_nothing = started_nothing


class AuthenticationError(ProviderError):
    """The key was refused."""

    reason = Failure.AUTH
    started_nothing = True


class InsufficientCreditsError(ProviderError):
    """The account has no credits or package left."""

    reason = Failure.NO_CREDITS
    started_nothing = True


class KeyLimitError(InsufficientCreditsError):
    """A kie sub-key used up the spending limit its owner set (code 433; providers.md D)."""

    reason = Failure.KEY_LIMIT


class FirewallBlockedError(ProviderError):
    """A firewall in front of the provider refused this server; the key was never checked."""

    reason = Failure.BLOCKED
    # Cloudflare answers before the request reaches the provider (providers.md D).
    started_nothing = True


class InvalidRequestError(ProviderError):
    """The provider rejected the request's parameters."""

    reason = Failure.INVALID_REQUEST
    started_nothing = True


class ContentRejectedError(ProviderError):
    """The prompt or image was refused by moderation."""

    reason = Failure.MODERATION
    started_nothing = True


class GenerationFailedError(ProviderError):
    """The provider refused to generate (kie code 501)."""

    reason = Failure.GENERATION_FAILED


class NotFoundError(ProviderError):
    """The provider does not know the task."""

    reason = Failure.NOT_FOUND
    started_nothing = True


class RateLimitError(ProviderError):
    """Too many requests; try again after `retry_after` seconds."""

    reason = Failure.BUSY
    retryable = True
    # kie 429 and Kling 1302/1303 are documented as dropping the request.
    started_nothing = True

    def __init__(
        self, message: str, *, code: int | str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ServiceUnavailableError(ProviderError):
    """The provider failed or is in maintenance; a paid call may have gone through anyway."""

    reason = Failure.UNAVAILABLE
    retryable = True


class ProviderConnectionError(ServiceUnavailableError):
    """The provider could not be reached; the request surely did not arrive."""

    started_nothing = True


class ProviderTimeoutError(ServiceUnavailableError):
    """No complete answer: the request may or may not have been accepted."""

    reason = Failure.UNCERTAIN


class LookupInconclusiveError(ProviderError):
    """The provider could not say whether a task made under our id exists."""

    reason = Failure.UNCERTAIN


class CallbackRejectedError(ProviderError):
    """A callback whose signature or shape is wrong."""

    reason = Failure.BAD_CALLBACK
