"""Failure reasons: one type, a text per language each, and the admins told what needs them."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.chat.texts import LANGUAGES, t
from bot.chat.views.status import reason_text
from bot.core.failures import Failure
from bot.engine.alerts import STREAK, FailureWatch
from bot.providers import errors
from storage.models import GenerationOptions, TaskState
from tests.conftest import generate, task_row

FAILED = task_row(GenerationOptions(model="kie:kling-2.6/image-to-video"), state=TaskState.FAILED)


def subclasses(root: type[errors.ProviderError]) -> list[type[errors.ProviderError]]:
    found = []
    for child in root.__subclasses__():
        found += [child, *subclasses(child)]
    return found


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("failure", list(Failure))
def test_every_failure_has_its_own_text_in_every_language(failure: Failure, lang: str) -> None:
    failed = FAILED.model_copy(
        update={"error": failure.value, "error_detail": "DETAIL", "lang": lang}
    )
    text = reason_text(failed, 1200)
    assert text.strip() and "{" not in text
    other = "en" if lang != "en" else "zh"
    assert text != reason_text(failed.model_copy(update={"lang": other}), 1200)
    if failure.needs_owner:
        assert t(lang, f"admin.{failure.value}")


def test_no_reason_is_rendered_as_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    odd = FAILED.model_copy(update={"error": "from_an_old_version"})
    assert reason_text(odd, 1200) == reason_text(
        odd.model_copy(update={"error": Failure.PROVIDER_ERROR.value}), 1200
    )
    assert "from_an_old_version" in caplog.text


def test_every_provider_error_names_a_failure() -> None:
    for kind in [errors.ProviderError, *subclasses(errors.ProviderError)]:
        assert isinstance(kind.reason, Failure), kind


def test_the_owner_sentence_is_true_either_way() -> None:
    failed = FAILED.model_copy(update={"error": Failure.AUTH.value})
    assert "has been told" in reason_text(failed, 1200, owner_told=True)
    assert "let the bot's owner know" in reason_text(failed, 1200, owner_told=False)
    moderation = failed.model_copy(update={"error": Failure.MODERATION.value})
    assert "owner" not in reason_text(moderation, 1200, owner_told=True)


class Alerts:
    """A stand-in messenger that records alerts (unit test of the watch only)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []

    async def alert_admins(
        self, backend: str, reason: str, detail: str | None, *, count: int = 0
    ) -> None:
        self.sent.append((backend, reason, count))


async def test_the_admins_hear_at_once_of_keys_and_money_and_of_failures_in_a_row() -> None:
    alerts = Alerts()
    watch = FailureWatch(alerts)  # type: ignore[arg-type]
    await watch.failed("kie", Failure.NO_CREDITS, "402")
    assert alerts.sent == [("kie", "no_credits", 0)]
    for _ in range(STREAK - 1):
        await watch.failed("kling", Failure.UNAVAILABLE, "5000")
        await watch.failed("kling", Failure.MODERATION, None)  # the user's content: not counted
    assert len(alerts.sent) == 1
    watch.worked("kling")  # a task went through: the streak starts over
    for _ in range(STREAK):
        await watch.failed("kling", Failure.TIMEOUT, None)
    assert alerts.sent[-1] == ("kling", "keeps_failing", STREAK)
    await watch.failed("kie", Failure.UNCERTAIN, None)  # another backend's own count
    assert len(alerts.sent) == 2


async def test_a_refused_key_reaches_the_admins_and_the_user_is_told_so(harness: Any) -> None:
    async with harness(admin_user_ids=[4242]) as h:
        h.kie.fail_next("createTask", code=401, msg="You do not have access permissions")
        await generate(h)
        alert = await h.telegram.wait_for_call(
            "sendMessage", lambda c: c.params["chat_id"] == 4242, timeout=5
        )
        assert "refused the bot's key" in alert[-1].params["text"]
        status = await h.telegram.wait_for_call(
            "editMessageText", lambda c: "failed" in c.params["text"], timeout=5
        )
        assert "The bot's owner has been told." in status[-1].params["text"]
