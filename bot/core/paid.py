"""Starting a task: the free preparation, the paid create once, and settling a lost create."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from bot.core.failures import Failure
from bot.providers.base import PreparedTask, Provider, VideoRequest
from bot.providers.errors import ProviderError, ServiceUnavailableError
from bot.providers.retry import with_retries

# Rate limits (kie 429, Kling 1302/1303) usually pass within a minute.
CREATE_ATTEMPTS = 5
# A lookup after a lost create answer keeps trying through about two minutes of outage.
LOOKUP_ATTEMPTS = 8
LOOKUP_BACKOFF_CAP = 60.0


class UncertainCreateError(ProviderError):
    """The create may have gone through and the provider could not say: never send it again."""

    reason = Failure.UNCERTAIN


def _retryable(error: ProviderError) -> bool:
    return error.retryable


async def prepare(provider: Provider, request: VideoRequest, *, base: float) -> PreparedTask:
    """The provider's free work (uploads, encoding), retried even after a timeout.

    Nothing is paid yet, so a lost answer is the service being unavailable, not uncertain.
    """
    try:
        return await with_retries(
            lambda: provider.prepare(request),
            attempts=CREATE_ATTEMPTS,
            base=base,
            should_retry=_retryable,
        )
    except ProviderError as exc:
        if exc.reason is Failure.UNCERTAIN:
            raise ServiceUnavailableError(exc.message) from exc
        raise


async def settle(provider: Provider, external_id: str, *, base: float) -> str | None:
    """The task a create under `external_id` made; None only if the provider proves none.

    Raises UncertainCreateError when the provider cannot look tasks up or cannot tell.
    """
    if not provider.can_find:
        raise UncertainCreateError(f"{provider.name} cannot look tasks up by our id")
    try:
        return await with_retries(
            lambda: provider.find(external_id),
            attempts=LOOKUP_ATTEMPTS,
            base=base,
            cap=LOOKUP_BACKOFF_CAP,
            should_retry=_retryable,
        )
    except ProviderError as exc:
        raise UncertainCreateError(f"lookup failed: {exc.message}") from exc


async def create_once(
    provider: Provider,
    prepared: PreparedTask,
    external_id: str,
    *,
    base: float,
    around_each: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    on_uncertain: Callable[[ProviderError], Awaitable[None]] | None = None,
) -> str:
    """Make the paid call and return the provider's task id; never pay twice for one request.

    The call is repeated only after refusals that surely started nothing (kie 429/455,
    Kling 1302/1303, no connection). Any other failure after the request left is settled:
    the task is looked up and adopted, and created again only when the provider proves
    there is none. Raises UncertainCreateError when that cannot be known, or the refusal.
    """

    async def attempt() -> str:
        if around_each is None:
            return await provider.start(prepared)
        async with around_each():  # a rate limit's slot, held until the answer
            return await provider.start(prepared)

    for again in (False, True):
        try:
            return await with_retries(attempt, attempts=CREATE_ATTEMPTS, base=base)
        except ProviderError as exc:
            if exc.started_nothing and again:
                # A refusal of the repeat may be the first create's duplicate (Kling refuses a
                # reused external_task_id): the first may exist after all.
                raise UncertainCreateError(f"repeat refused: {exc.message}") from exc
            if exc.started_nothing:
                raise
            if on_uncertain is not None:
                await on_uncertain(exc)
        found = await settle(provider, external_id, base=base)
        if found is not None:
            return found
    raise UncertainCreateError("the repeated create's outcome is unknown too")
