"""httpx auth for official-shape backends: a Kling JWT from access + secret key, or a static key."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Generator

import httpx
import jwt

LIFETIME = 1800
RENEW_BEFORE = 300
NOT_BEFORE_SKEW = 5
# After Kling refused a token as not yet valid or expired, allow for more clock difference.
WIDE_SKEW = 60
# Kling's envelope codes for a token not yet valid (1003) or expired (1004): re-sign, once.
TOKEN_CODES = frozenset({1003, 1004})


def encode_jwt(
    access_key: str,
    secret_key: str,
    now: float,
    lifetime: int = LIFETIME,
    skew: int = NOT_BEFORE_SKEW,
) -> str:
    """An HS256 JWT with Kling's claims: `iss` the access key, `exp` and `nbf` around `now`."""
    claims = {"iss": access_key, "exp": int(now) + lifetime, "nbf": int(now) - skew}
    with warnings.catch_warnings():
        # Kling issues the secret key: a warning about its length is nothing we could act on.
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        # PyJWT writes the header as {"alg": "HS256", "typ": "JWT"}, the one Kling asks for.
        return jwt.encode(claims, secret_key, algorithm="HS256")


class BearerAuth(httpx.Auth):
    """A static API key sent as a bearer token (tu-zi, or a plain Kling API key)."""

    def __init__(self, key: str) -> None:
        self._value = f"Bearer {key}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the same header to every request; a refused key is not retried."""
        request.headers["Authorization"] = self._value
        yield request


class KlingJwtAuth(httpx.Auth):
    """A Kling JWT on each request, reused until near expiry, re-signed once when refused."""

    # Kling says "not yet valid" or "expired" in the envelope's code, whatever the status; the
    # refused request is then sent again, so its body must be at hand.
    requires_response_body = True
    requires_request_body = True

    def __init__(
        self, access_key: str, secret_key: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._skew = NOT_BEFORE_SKEW

    def token(self) -> str:
        """A token that is valid for a while yet: the current one, or a new one near expiry."""
        now = self._clock()
        if self._token is None or now >= self._renew_at:
            self._token = encode_jwt(self._access_key, self._secret_key, now, skew=self._skew)
            self._renew_at = now + LIFETIME - RENEW_BEFORE
        return self._token

    def refused(self, token: str) -> None:
        """Kling refused `token`: sign anew, tolerant of a clock behind ours."""
        self._skew = WIDE_SKEW
        # Requests in flight together may all be refused; the first refusal renews for all.
        if token == self._token:
            self._token = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send with the current token; on Kling's 1003 or 1004, once more with a new one."""
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if _envelope_code(response) in TOKEN_CODES:
            self.refused(token)
            # A copy, so the refused request (and its response's `.request`) stays as sent.
            again = httpx.Request(
                request.method,
                request.url,
                headers=request.headers,
                content=request.content,
                extensions=request.extensions,
            )
            again.headers["Authorization"] = f"Bearer {self.token()}"
            yield again


def _envelope_code(response: httpx.Response) -> object:
    """The `code` of a Kling envelope, or None when the body is not one."""
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        return None
    return body.get("code") if isinstance(body, dict) else None
