"""HTTP plumbing shared by providers: one client, httpx errors turned into provider errors."""

from __future__ import annotations

from typing import Any

import httpx

from bot import __version__
from bot.providers.errors import (
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
)

USER_AGENT = f"kling-bot/{__version__} (+https://github.com/kling-bot/kling-bot)"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def new_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """An HTTP client with our User-Agent (Cloudflare rejects requests without one)."""
    return httpx.AsyncClient(
        timeout=DEFAULT_TIMEOUT, headers={"User-Agent": USER_AGENT}, transport=transport
    )


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header, if it holds a number."""
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


async def send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Send a request; transport failures and 429/5xx statuses become provider errors."""
    try:
        response = await client.send(request)
    except httpx.ConnectError as exc:
        raise ProviderConnectionError(f"cannot connect to {request.url.host}") from exc
    except httpx.ConnectTimeout as exc:
        raise ProviderConnectionError(f"connection to {request.url.host} timed out") from exc
    except httpx.TransportError as exc:
        raise ProviderTimeoutError(
            f"no complete answer from {request.url.host}: {type(exc).__name__}"
        ) from exc
    if response.status_code == 429:
        raise RateLimitError("rate limited", code=429, retry_after=retry_after(response))
    if response.status_code >= 500:
        raise ServiceUnavailableError(f"HTTP {response.status_code}", code=response.status_code)
    return response


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or ServiceUnavailableError if it is not one."""
    try:
        body = response.json()
    except ValueError as exc:
        raise ServiceUnavailableError(
            f"HTTP {response.status_code} with a body that is not JSON"
        ) from exc
    if not isinstance(body, dict):
        raise ServiceUnavailableError(f"HTTP {response.status_code} with an unexpected body")
    return body
