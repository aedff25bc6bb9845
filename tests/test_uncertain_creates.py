"""A create the provider accepted but answered badly is never paid twice, nor its video lost.

Each backend's fake creates the task (it is paid for), then spoils the answer: a 200 cut off
mid-JSON, a proxy's HTML 502 or 524 page, a connection reset before any byte, or silence until
the bot's read timeout. With callbacks on and off, the bot must make one paid create per tap
and deliver every task the provider can identify (official Kling by `external_task_id`; kie by
the callback that names our task); where nothing can identify it, the user is told honestly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from storage.models import TaskState
from tests.conftest import Harness, button, generate
from tests.fakes.common import BREAKAGES, Breakage, ProviderFake
from tests.ledger import MONEY

Run = Callable[..., Any]

MODELS = {"kie": None, "kling": "kling:kling-v2-6", "tuzi": "tuzi:kling-v2-6"}
# Whether the provider can tell us our task after a lost answer, with callbacks off / on.
IDENTIFIABLE = {
    ("kie", False): False,  # no lookup, no callback: nothing names the task
    ("kie", True): True,  # the callback to our task's URL carries kie's taskId
    ("kling", False): True,  # looked up by external_task_id
    ("kling", True): True,
    ("tuzi", False): False,  # tu-zi documents no lookup by our id, and no callbacks
    ("tuzi", True): False,
}


def fake_of(h: Harness, backend: str) -> ProviderFake[Any]:
    fake = {"kie": h.kie, "kling": h.kling, "tuzi": h.tuzi}[backend]
    assert fake is not None
    return fake


def creates(fake: ProviderFake[Any]) -> int:
    return len(fake.creates())  # type: ignore[attr-defined]


async def finish_all(fake: ProviderFake[Any]) -> None:
    for task_id in list(fake.tasks):
        await fake.complete(task_id)  # type: ignore[attr-defined]


@pytest.mark.parametrize("callbacks", [False, True], ids=["polling", "callbacks"])
@pytest.mark.parametrize("how", BREAKAGES)
@pytest.mark.parametrize("backend", ["kie", "kling", "tuzi"])
async def test_a_spoiled_create_answer_is_settled_not_repeated(
    harness: Run, backend: str, how: Breakage, callbacks: bool
) -> None:
    overrides: dict[str, Any] = {"backends": (backend,), "callbacks": callbacks}
    if MODELS[backend]:
        overrides["default_model"] = MODELS[backend]
    # "silence" ends in the bot's read timeout; keep it short.
    async with harness(provider_timeout=1.0, **overrides) as h:
        fake = fake_of(h, backend)
        endpoint = "createTask" if backend == "kie" else "create"
        fake.spoil(endpoint, how)
        await generate(h)
        identifiable = IDENTIFIABLE[(backend, callbacks)]
        if identifiable and backend == "kie":
            # The bot cannot know yet: it says so, then kie's callback names the task.
            await h.wait_task(lambda t: t.state is TaskState.FAILED, timeout=10)
            await finish_all(fake)
            await h.telegram.wait_for_call("sendMessage", lambda c: "did start" in c.params["text"])
        elif identifiable:
            await h.wait_task(lambda t: t.state is TaskState.QUEUED, timeout=10)
            await finish_all(fake)
        else:
            failed = await h.wait_task(lambda t: t.state is TaskState.FAILED, timeout=10)
            assert failed.error == "uncertain"
            notice = await h.telegram.wait_for_call(
                "editMessageText", lambda c: "may not have started" in c.params["text"]
            )
            status = h.telegram.messages[(h.user.id, notice[-1].params["message_id"])]
            assert button(status, "Retry")
            await finish_all(fake)
        await asyncio.sleep(0.3)  # room for a wrong second create or video to show up
        videos = len(h.telegram.calls_of("sendVideo"))
        tasks = await h.services.tasks.in_states(*TaskState)
        undelivered = len(fake.tasks) - videos
        MONEY.record(
            f"{backend} {how} {'callbacks' if callbacks else 'polling'}",
            presses=1,
            paid_creates=creates(fake),
            undelivered=undelivered,
            identifiable=identifiable,
        )
        assert creates(fake) == 1 and len(fake.tasks) == 1  # one paid create per press
        if identifiable:
            assert videos == 1 and undelivered == 0
            assert [t.state for t in tasks] == [TaskState.DELIVERED]
        else:
            assert videos == 0 and [t.state for t in tasks] == [TaskState.FAILED]


async def test_a_callback_naming_another_task_adopts_nothing(harness: Run) -> None:
    async with harness(callbacks=True, poll_interval=60.0) as h:
        h.kie.spoil("createTask", "not_json")
        await generate(h, "the first kite")
        lost = await h.wait_task(lambda t: t.state is TaskState.FAILED)
        await generate(h, "the second kite")
        other = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        # The lost task's own URL and secret, but kie's record of another task: its `param`
        # names the other task's callback URL, so the bot must not take it as the lost one.
        url = f"{h.settings.public_url}/callbacks/kie/{lost.id}/{lost.callback_secret}"
        body = {"code": 200, "msg": "ok", "data": {"taskId": other.provider_task_id}}
        async with httpx.AsyncClient() as client:
            answer = await client.post(url, json=body)
        assert answer.status_code == 200
        await asyncio.sleep(0.5)  # the adoption runs in the background: let it look
        still = await h.services.tasks.get(lost.id)
        assert still.state is TaskState.FAILED and still.provider_task_id is None
        assert not [
            c for c in h.telegram.calls_of("sendMessage") if "did start" in c.params["text"]
        ]
