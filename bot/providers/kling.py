"""The official Kling API: JWT from access + secret key, or a plain API key."""

from __future__ import annotations

import httpx

from bot.providers.kling_auth import Auth, BearerAuth, JwtAuth
from bot.providers.kling_wire import OFFICIAL, OfficialShapeProvider


def official_kling(
    base_url: str,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    api_key: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout | None = None,
) -> OfficialShapeProvider:
    """The `kling` backend; access + secret key win over a plain key."""
    auth: Auth
    if access_key and secret_key:
        auth = JwtAuth(access_key, secret_key)
    elif api_key:
        auth = BearerAuth(api_key)
    else:
        raise ValueError(
            "the Kling backend needs KLING_ACCESS_KEY + KLING_SECRET_KEY or KLING_API_KEY"
        )
    return OfficialShapeProvider("kling", base_url, auth, OFFICIAL, transport, timeout)
