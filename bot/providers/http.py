"""HTTP plumbing shared by providers: one client, httpx errors turned into provider errors."""

from __future__ import annotations

import math
import re
from typing import Any

import httpx

from bot import __version__
from bot.providers.errors import (
    AuthenticationError,
    FirewallBlockedError,
    InvalidRequestError,
    NotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
)

USER_AGENT = f"kling-bot/{__version__} (+https://github.com/kling-bot/kling-bot)"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def new_client(
    transport: httpx.AsyncBaseTransport | None = None, timeout: httpx.Timeout | None = None
) -> httpx.AsyncClient:
    """An HTTP client with our User-Agent (Cloudflare rejects requests without one)."""
    return httpx.AsyncClient(
        timeout=timeout or DEFAULT_TIMEOUT, headers={"User-Agent": USER_AGENT}, transport=transport
    )


MAX_RETRY_AFTER = 3600.0


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header, if it holds a sane number (at most an hour)."""
    value = response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


async def send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Send a request; transport failures become provider errors that say if it arrived."""
    try:
        return await client.send(request)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # Nothing was sent: no connection, or none free in our own pool.
        raise ProviderConnectionError(f"cannot connect to {request.url.host}") from exc
    except httpx.HTTPError as exc:
        # Sent, or partly sent (a timeout, a reset, a body that cannot be decoded, a redirect
        # loop): the provider may have accepted it.
        raise ProviderTimeoutError(
            f"no complete answer from {request.url.host}: {type(exc).__name__}"
        ) from exc


# Statuses that say the request was not seen through: it may still have been acted on.
_UNFINISHED = frozenset({408, 499})
# Cloudflare's refusal of the client itself (providers.md D): a firewall block, not a bad key.
_CLOUDFLARE_1010 = re.compile(r"error\s+code:?\s*1010\b", re.IGNORECASE)


def status_error(response: httpx.Response, message: str | None = None) -> ProviderError:
    """The error an HTTP status means when the body does not say more.

    Client errors are refusals; a 5xx (a proxy's 502 or 524 page included) may come after the
    provider accepted the request, so it never counts as "nothing started".
    """
    status = response.status_code
    text = message or f"HTTP {status}"
    if status in _UNFINISHED:
        return ServiceUnavailableError(text, code=status)
    if status == 429:
        return RateLimitError(text, code=status, retry_after=retry_after(response))
    if status == 403 and _CLOUDFLARE_1010.search(response.text):
        return FirewallBlockedError(
            "HTTP 403, Cloudflare error code 1010: a firewall block, not a key problem; "
            "check the server's IP address and User-Agent",
            code=status,
        )
    if status in (401, 403):
        return AuthenticationError(text, code=status)
    if status == 404:
        return NotFoundError(text, code=status)
    if 400 <= status < 500:
        return InvalidRequestError(text, code=status)
    return ServiceUnavailableError(text, code=status)


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object; a body that is not one is judged by the HTTP status."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        if response.is_success:
            # A success status with a broken body: the request may well have been accepted.
            raise ServiceUnavailableError(
                f"HTTP {response.status_code} with a body that is not a JSON object"
            )
        raise status_error(response)
    return body
