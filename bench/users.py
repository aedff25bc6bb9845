"""Simulated users: each sends a photo and taps Generate on its draft; what the bot sends back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from bench.fakes import WebhookPusher
from tests.fakes.telegram import Call, FakeTelegram, FakeUser

FIRST_USER_ID = 700_000_000
# The warm-up wave's users (see load.run): ids of their own, so each wave knows its videos.
WARMUP_FIRST_ID = 710_000_000
WATCH_PERIOD = 0.005
WATCHED = frozenset({"sendMessage", "sendVideo", "answerCallbackQuery"})


@dataclass
class Person:
    """One user and the moments of their conversation (time.monotonic, like `Call.at`)."""

    user: FakeUser
    photo: dict[str, Any] | None = None
    pushed_at: float | None = None
    draft_at: float | None = None
    tapped_at: float | None = None
    query_id: str | None = None
    acked_at: float | None = None
    videos: list[Call] = field(default_factory=list)

    @property
    def photo_id(self) -> int:
        """The message id of the user's photo."""
        assert self.photo is not None
        return int(self.photo["message_id"])


def generate_button(message: dict[str, Any]) -> str | None:
    """The callback_data of a message's Generate button, if it has one."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    for row in rows:
        for button in row:
            if "Generate" in button.get("text", ""):
                return str(button["callback_data"])
    return None


class Crowd:
    """N users talking to the bot at once through the fake Telegram (and its webhook)."""

    def __init__(
        self, telegram: FakeTelegram, count: int, image: bytes, first_id: int = FIRST_USER_ID
    ) -> None:
        self.telegram = telegram
        self.image = image
        self.people = {
            first_id + n: Person(FakeUser(id=first_id + n, first_name=f"User{n}"))
            for n in range(count)
        }
        self.pusher: WebhookPusher | None = None
        self.served = 0
        self.acked = 0
        self.started_at: float | None = None
        self._everyone_served = asyncio.Event()
        self._by_query: dict[str, Person] = {}
        self._seen = 0
        self._unanswered: list[Call] = []

    def write(self) -> None:
        """Every user writes their photo (queued at the fake until the bot takes it)."""
        for n, person in enumerate(self.people.values()):
            caption = f"user {n} waves slowly at the camera"
            person.photo = self.telegram.send_photo(person.user, self.image, caption)

    def begin(self, pusher: WebhookPusher | None, at: float | None = None) -> None:
        """Start the clock (at `at`, else now); in webhook mode post the photos to the bot."""
        self.pusher = pusher
        self.started_at = time.monotonic() if at is None else at
        if pusher is None:
            return
        for person in self.people.values():
            assert person.photo is not None
            person.pushed_at = time.monotonic()
            pusher.push("message", person.photo)

    async def watch(self) -> None:
        """Follow the bot's calls until cancelled: tap each draft, note acks and videos."""
        while True:
            self.scan()
            await asyncio.sleep(WATCH_PERIOD)

    def scan(self) -> None:
        """Look at the calls made since the last scan."""
        calls = self.telegram.calls
        fresh, self._unanswered = self._unanswered, []
        fresh.extend(calls[self._seen :])
        self._seen = len(calls)
        for call in fresh:
            if call.method in WATCHED and call.status == 200 and call.result is None:
                self._unanswered.append(call)  # recorded but not answered yet
            elif call.ok:
                self._see(call)

    def _see(self, call: Call) -> None:
        if call.method == "answerCallbackQuery":
            asked = self._by_query.get(str(call.params.get("callback_query_id")))
            if asked is not None and asked.acked_at is None:
                asked.acked_at = call.at
                self.acked += 1
            return
        if call.method not in ("sendMessage", "sendVideo"):
            return
        person = self.people.get(int(call.params.get("chat_id", 0)))
        if person is None:
            return
        if call.method == "sendVideo":
            person.videos.append(call)
            if len(person.videos) == 1:
                self.served += 1
                if self.served == len(self.people):
                    self._everyone_served.set()
        elif person.draft_at is None and _replies_to(call) == person.photo_id:
            data = generate_button(call.result)
            if data is not None:
                person.draft_at = call.at
                self._tap(person, call.result, data)

    def _tap(self, person: Person, draft: dict[str, Any], data: str) -> None:
        person.query_id = self.telegram.tap(person.user, draft, data)
        person.tapped_at = time.monotonic()
        self._by_query[person.query_id] = person
        if self.pusher is not None:
            chat_id = int(draft["chat"]["id"])
            query = {
                "id": person.query_id,
                "from": person.user.to_dict(),
                "message": draft,
                "chat_instance": str(-chat_id * 7919),
                "data": data,
            }
            self.pusher.push("callback_query", query)

    def in_flight(self) -> int:
        """Tasks the bot has taken (Generate answered) and not yet delivered."""
        return self.acked - self.served

    async def wait_served(self, seconds: float) -> bool:
        """Wait up to `seconds` until every user has a video; False if some have none."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._everyone_served.wait(), seconds)
        return self.served == len(self.people)


def _replies_to(call: Call) -> int | None:
    reply = call.params.get("reply_parameters")
    if isinstance(reply, dict) and "message_id" in reply:
        return int(reply["message_id"])
    return None
