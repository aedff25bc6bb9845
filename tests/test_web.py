"""The web app answers odd requests with a 4xx, never a 5xx, and changes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bot.web import parse_task_id, webhook_secret
from storage.models import TaskState
from tests.conftest import TOKEN, generate

Run = Callable[..., Any]

TOO_DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("42", 42),
        (str(2**63 - 1), 2**63 - 1),
        (str(2**63), None),
        ("9" * 30, None),
        ("0", None),
        ("-1", None),
        ("+1", None),
        ("01", None),
        ("1.0", None),
        ("0x1", None),
        (" 1", None),
        ("١", None),  # an Arabic-Indic one: str.isdigit() says yes
        ("", None),
    ],
)
def test_task_ids_are_positive_64_bit_integers(text: str, expected: int | None) -> None:
    assert parse_task_id(text) == expected


async def test_callbacks_with_bad_ids_secrets_bodies_or_methods_get_4xx(harness: Run) -> None:
    async with harness(callbacks=True, poll_interval=60.0) as h:
        await generate(h)
        task = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        root = f"http://127.0.0.1:{h.bot.http_port}"
        kie = f"{root}/callbacks/kie"
        secret = task.callback_secret
        posts = {
            f"{kie}/{'9' * 30}/{secret}": 404,
            f"{kie}/{2**63}/{secret}": 404,
            f"{kie}/{2**63 - 1}/{secret}": 404,
            f"{kie}/-1/{secret}": 404,
            f"{kie}/0/{secret}": 404,
            f"{kie}/0{task.id}/{secret}": 404,
            f"{kie}/%D9%A1/{secret}": 404,
            f"{kie}/{task.id}/секрет": 404,
            f"{kie}/{task.id}/%FF%FE%00": 404,
            f"{kie}/{task.id}/{'s' * 8000}": 404,
            f"{root}/callbacks/nosuch/{task.id}/{secret}": 404,
            f"{root}/callbacks/kling/{task.id}/{secret}": 404,
            f"{root}/callbacks/kie/{task.id}": 404,
            f"{root}/telegram": 404,  # not in webhook mode
            f"{root}/nowhere": 404,
        }
        bodies = [b"", b"\xff\xfe garbage", b"null", b"[]", b'{"data": 5}', b'"\\ud800"', TOO_DEEP]
        async with httpx.AsyncClient(timeout=10) as client:
            answers = {url: (await client.post(url, content=b"{}")).status_code for url in posts}
            refused = [
                (await client.post(f"{kie}/{task.id}/{secret}", content=body)).status_code
                for body in bodies
            ]
            wrong_method = [
                (await client.get(f"{kie}/{task.id}/{secret}")).status_code,
                (await client.put(f"{root}/healthz")).status_code,
                (await client.delete(f"{kie}/{task.id}/{secret}")).status_code,
            ]
            unknown = [(await client.get(f"{root}{path}")).status_code for path in ("/", "/x")]
        assert answers == posts
        assert refused == [401] * len(bodies)
        assert wrong_method == [405, 405, 405]
        assert unknown == [404, 404]
        assert (await h.services.tasks.get(task.id)).state is TaskState.QUEUED
        assert h.kie.polls(task.provider_task_id) == 0


async def test_webhook_answers_400_to_what_is_not_an_update(harness: Run) -> None:
    async with harness(callbacks=True, telegram_webhook=True) as h:
        url = f"{h.settings.public_url}/telegram"
        secret = {"X-Telegram-Bot-Api-Secret-Token": webhook_secret(TOKEN)}
        chat = {"id": h.user.id, "type": "private"}
        not_updates = [
            b"",
            b"not json",
            b"\xff\xfe",
            TOO_DEEP,
            b'"\\ud800"',
            b"[]",
            b"5",
            b"null",
            b"{}",
            b'{"update_id": "1"}',
            b'{"update_id": 1, "message": 5}',
            b'{"update_id": 1, "message": []}',
            b'{"update_id": 1, "message": {"message_id": 1}}',
            json.dumps(
                {"update_id": 1, "message": {"message_id": 1, "date": 10**20, "chat": chat}}
            ).encode(),
        ]
        async with httpx.AsyncClient(timeout=10) as client:
            answers = [
                (await client.post(url, content=body, headers=secret)).status_code
                for body in not_updates
            ]
            odd_secret = await client.post(
                url, content=b"{}", headers={"X-Telegram-Bot-Api-Secret-Token": b"\xff\xfe"}
            )
            get = await client.get(url, headers=secret)
        assert answers == [400] * len(not_updates)
        assert odd_secret.status_code == 403 and get.status_code == 405


async def test_requests_that_are_not_http_get_400(harness: Run) -> None:
    async with harness(callbacks=True) as h:
        for raw in (
            b"NOT HTTP AT ALL\r\n\r\n",
            b"POST /callbacks/kie/1/\xff\xfe HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", h.bot.http_port)
            writer.write(raw)
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            await writer.wait_closed()
            assert status.startswith(b"HTTP/1.1 400"), (raw, status)
