"""Kling's JWT and the static bearer as httpx auth: claims, reuse, renewal on 1003/1004."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from bot.providers.kling_auth import BearerAuth, KlingJwtAuth, encode_jwt

SECRET = "kling-secret-key-0123456789abcdef0123"
NOW = 1_000_000.0


def claims_of(token: str) -> dict[str, Any]:
    options = {"verify_exp": False, "verify_nbf": False, "require": ["iss", "exp", "nbf"]}
    return jwt.decode(token, SECRET, algorithms=["HS256"], options=options)  # type: ignore[arg-type]


def envelope(code: int, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": f"code {code}", "data": None})


def client(
    auth: httpx.Auth, answers: list[httpx.Response]
) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    """A client whose server gives `answers` in turn, then code 0 forever."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0) if answers else envelope(0)

    return httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(handle)), seen


def bearer(request: httpx.Request) -> str:
    return request.headers["authorization"].removeprefix("Bearer ")


def test_pyjwt_token_is_byte_for_byte_the_documented_one() -> None:
    def b64(part: dict[str, Any]) -> str:
        raw = json.dumps(part, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header, claims = {"alg": "HS256", "typ": "JWT"}, {"iss": "AK", "exp": 1_001_800, "nbf": 999_995}
    signing_input = f"{b64(header)}.{b64(claims)}"
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    expected = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    assert encode_jwt("AK", SECRET, NOW + 0.9) == expected


def test_short_secret_signs_without_a_warning() -> None:
    # Kling chooses the key; PyJWT's key-length warning would be an error under pytest here.
    assert encode_jwt("AK", "short", NOW).count(".") == 2


def test_token_is_reused_then_renewed_before_expiry() -> None:
    clock = [NOW]
    auth = KlingJwtAuth("AK", SECRET, clock=lambda: clock[0])
    first = auth.token()
    assert claims_of(first) == {"iss": "AK", "exp": int(NOW) + 1800, "nbf": int(NOW) - 5}
    clock[0] += 600
    assert auth.token() == first
    clock[0] += 1000  # 1600 s: within five minutes of expiry
    renewed = auth.token()
    assert renewed != first
    assert claims_of(renewed)["exp"] == int(clock[0]) + 1800


async def test_client_requests_carry_the_token_and_reuse_it() -> None:
    clock = [NOW]
    auth = KlingJwtAuth("AK", SECRET, clock=lambda: clock[0])
    http, seen = client(auth, [])
    async with http:
        await http.get("https://kling.test/a")
        await http.post("https://kling.test/b", json={"x": 1})
        clock[0] += 1600
        await http.get("https://kling.test/c")
    assert bearer(seen[0]) == bearer(seen[1]) != bearer(seen[2])
    assert claims_of(bearer(seen[2]))["exp"] == int(NOW) + 1600 + 1800


@pytest.mark.parametrize(("code", "status"), [(1004, 401), (1003, 401), (1004, 200)])
async def test_refused_token_is_renewed_and_the_request_sent_once_more(
    code: int, status: int
) -> None:
    auth = KlingJwtAuth("AK", SECRET, clock=lambda: NOW)
    http, seen = client(auth, [envelope(code, status)])
    async with http:
        response = await http.post("https://kling.test/v1/videos/image2video", json={"p": 1})
    assert response.json()["code"] == 0
    assert len(seen) == 2 and seen[1].content == seen[0].content == b'{"p":1}'
    assert [(seen[1].method, seen[1].url)] == [(seen[0].method, seen[0].url)]
    others = [[h for h in r.headers.multi_items() if h[0] != "authorization"] for r in seen]
    assert others[1] == others[0]
    first, second = (claims_of(bearer(request)) for request in seen)
    assert first["nbf"] == int(NOW) - 5
    # Refused as not yet valid or expired: allow for a clock well behind ours from now on.
    assert second["nbf"] == int(NOW) - 60
    assert auth.token() == bearer(seen[1])


async def test_a_second_refusal_is_returned_not_retried() -> None:
    auth = KlingJwtAuth("AK", SECRET, clock=lambda: NOW)
    http, seen = client(auth, [envelope(1004, 401), envelope(1004, 401), envelope(1004, 401)])
    async with http:
        response = await http.get("https://kling.test/x")
    assert response.status_code == 401 and response.json()["code"] == 1004
    assert len(seen) == 2


Answer = Callable[[], httpx.Response]


@pytest.mark.parametrize(
    "answer",
    [
        lambda: envelope(1000, 401),
        lambda: envelope(1302, 429),
        lambda: httpx.Response(401, text="not json"),
        lambda: httpx.Response(502, content=b"\xff\xfe"),
        lambda: httpx.Response(200, json=[1004]),
    ],
    ids=["bad-key", "rate-limit", "text", "bytes", "list"],
)
async def test_other_answers_are_not_retried(answer: Answer) -> None:
    auth = KlingJwtAuth("AK", SECRET, clock=lambda: NOW)
    http, seen = client(auth, [answer()])
    async with http:
        await http.get("https://kling.test/x")
    assert len(seen) == 1


def test_only_the_first_of_simultaneous_refusals_renews() -> None:
    auth = KlingJwtAuth("AK", SECRET, clock=lambda: NOW)
    old = auth.token()
    auth.refused(old)
    new = auth.token()
    auth.refused(old)  # a request that was in flight with the old token
    assert auth.token() == new != old


async def test_static_bearer_is_sent_as_is_and_never_retried() -> None:
    http, seen = client(BearerAuth("plain-key"), [envelope(1004, 401)])
    async with http:
        await http.get("https://kling.test/x")
    assert [request.headers["authorization"] for request in seen] == ["Bearer plain-key"]
