"""Errors as the providers have them: a sub-key's limit, a firewall block, packs in force."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bot.chat.texts import EN, ZH
from bot.providers.errors import (
    FirewallBlockedError,
    InsufficientCreditsError,
    KeyLimitError,
)
from storage.models import TaskState
from tests.conftest import generate
from tests.fakes.kling import resource_pack
from tests.fakes.telegram import FakeUser

Run = Callable[..., Any]
ADMIN = FakeUser(id=9000, first_name="Root")


def test_the_new_reasons_are_refusals_told_in_both_languages() -> None:
    limit = KeyLimitError("sub-key limit reached", code=433)
    blocked = FirewallBlockedError("error code: 1010", code=403)
    # A key limit is a kind of "no credits": whatever handles running dry handles it too.
    assert isinstance(limit, InsufficientCreditsError)
    assert (limit.reason, blocked.reason) == ("key_limit", "blocked")
    for error in (limit, blocked):
        assert error.started_nothing and not error.retryable
        assert EN[f"reason.{error.reason}"] and ZH[f"reason.{error.reason}"]
    assert "spending limit" in EN["reason.key_limit"] and "消费上限" in ZH["reason.key_limit"]
    assert "Cloudflare" in EN["reason.blocked"] and "Cloudflare" in ZH["reason.blocked"]


async def test_a_sub_key_at_its_limit_is_explained(harness: Run) -> None:
    async with harness() as h:
        h.kie.fail_next("createTask", code=433, msg="The sub-key has exceeded its limit")
        await generate(h)
        failed = await h.wait_task(lambda t: t.state is TaskState.FAILED)
        assert failed.error == "key_limit" and failed.next_poll_at is None
        edits = await h.telegram.wait_for_call(
            "editMessageText", lambda c: "spending limit" in c.params["text"]
        )
        assert "No credits were used" in edits[0].params["text"]
        assert len(h.kie.creates()) == 1 and not h.kie.tasks


async def test_a_cloudflare_block_is_a_firewall_not_a_bad_key(harness: Run) -> None:
    async with harness(admin_user_ids=str(ADMIN.id)) as h:
        h.kie.firewall_block("createTask", times=1)
        await generate(h)
        failed = await h.wait_task(lambda t: t.state is TaskState.FAILED)
        assert failed.error == "blocked"
        edits = await h.telegram.wait_for_call(
            "editMessageText", lambda c: "firewall" in c.params["text"]
        )
        text = edits[0].params["text"]
        assert "Cloudflare" in text and "No credits were used" in text
        assert "refused the bot's key" not in text and "answered with an error" not in text
        # Cloudflare answered before kie saw the request: nothing to pay, nothing to repeat.
        assert len(h.kie.creates()) == 1 and not h.kie.tasks

        h.kie.firewall_block("credit")
        balance = h.telegram.send_text(ADMIN, "/balance")
        shown = h.message(await h.reply_to(balance))["text"]
        assert "kie.ai" in shown and "blocked" in shown and "firewall" in shown
        assert "auth" not in shown


async def test_balance_lists_only_the_kling_packs_in_force(harness: Run) -> None:
    async with harness(backends=("kling",), admin_user_ids=str(ADMIN.id)) as h:
        assert h.kling is not None
        h.kling.packs = [
            resource_pack("Old pack", "expired", remaining=5, from_days=-60, to_days=-30),
            resource_pack("Spent pack", "runOut", remaining=0),
            resource_pack("Next pack", "toBeOnline", remaining=100, from_days=2, to_days=40),
            # Its status has not caught up with its end yet.
            resource_pack("Lapsed pack", "online", remaining=9, from_days=-40, to_days=-1),
            resource_pack("Video pack", "online", remaining=42, total=100),
        ]
        first = h.telegram.send_text(ADMIN, "/balance")
        shown = h.message(await h.reply_to(first))["text"]
        assert "Video pack: 42 of 100 left" in shown
        for gone in ("Old pack", "Spent pack", "Next pack", "Lapsed pack"):
            assert gone not in shown

        h.kling.packs = h.kling.packs[:4]
        second = h.telegram.send_text(ADMIN, "/balance")
        shown = h.message(await h.reply_to(second))["text"]
        assert "no resource packs in force" in shown and "pack:" not in shown


async def test_the_admins_are_told_once_when_a_key_is_refused(harness: Run) -> None:
    async with harness(admin_user_ids=frozenset({ADMIN.id})) as h:
        h.kie.fail_next("createTask", code=401, msg="Invalid API key", times=2)
        for caption in ("first try", "second try"):
            await generate(h, caption)
        await h.wait_task(lambda t: t.id == 2 and t.state is TaskState.FAILED)
        alerts = await h.telegram.wait_for_call(
            "sendMessage", lambda c: int(c.params["chat_id"]) == ADMIN.id
        )
        text = alerts[0].params["text"]
        assert "kie.ai" in text and "refused the bot's key" in text and "拒绝了机器人的密钥" in text
        await asyncio.sleep(0.3)
        to_admin = [
            c for c in h.telegram.calls_of("sendMessage") if int(c.params["chat_id"]) == ADMIN.id
        ]
        assert len(to_admin) == 1  # once an hour, not once a task
        assert len(h.kie.creates()) == 2  # a refused key is not retried
