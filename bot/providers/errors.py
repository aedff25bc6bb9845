"""Errors of provider API calls; each knows whether a retry can help and what to tell users."""

from __future__ import annotations

from typing import ClassVar


class ProviderError(Exception):
    """Root of every provider error."""

    reason: ClassVar[str] = "provider_error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, code: int | str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class AuthenticationError(ProviderError):
    """The key was refused."""

    reason = "auth"


class InsufficientCreditsError(ProviderError):
    """The account has no credits or package left."""

    reason = "no_credits"


class InvalidRequestError(ProviderError):
    """The provider rejected the request's parameters."""

    reason = "invalid_request"


class ContentRejectedError(ProviderError):
    """The prompt or image was refused by moderation."""

    reason = "moderation"


class GenerationFailedError(ProviderError):
    """The provider refused to generate (kie code 501)."""

    reason = "generation_failed"


class NotFoundError(ProviderError):
    """The provider does not know the task."""

    reason = "not_found"


class RateLimitError(ProviderError):
    """Too many requests; try again after `retry_after` seconds."""

    reason = "busy"
    retryable = True

    def __init__(
        self, message: str, *, code: int | str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ServiceUnavailableError(ProviderError):
    """The provider failed or is in maintenance."""

    reason = "unavailable"
    retryable = True


class ProviderConnectionError(ServiceUnavailableError):
    """The provider could not be reached; the request surely did not arrive."""


class ProviderTimeoutError(ServiceUnavailableError):
    """No answer in time: the request may or may not have been accepted."""

    reason = "uncertain"


class CallbackRejectedError(ProviderError):
    """A callback whose signature or shape is wrong."""

    reason = "bad_callback"
