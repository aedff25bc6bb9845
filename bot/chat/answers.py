"""What handling one update sent to Telegram: recorded as it goes, so a second handling of the
update (its first holder died) gets the first one's messages back instead of sending them
again."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from typing import Any

from storage.updates import Answer, UpdateRepository

log = logging.getLogger(__name__)

# Requests that put a new message in a chat: sent twice, the user sees it twice. Edits and
# callback answers repeated change nothing.
_NEW_MESSAGE = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendVideo",
        "sendDocument",
        "sendAnimation",
        "sendMediaGroup",
        "sendSticker",
        "copyMessage",
        "forwardMessage",
    }
)

Reply = bool | dict[str, Any] | list[dict[str, Any]]


class AnswerBook:
    """The messages one handling of an update sent, kept in the database as they go."""

    def __init__(self, updates: UpdateRepository, update_id: int, sent: list[Answer]) -> None:
        self._updates = updates
        self._update_id = update_id
        self._earlier = list(sent)  # sent by a holder that died: not sent again
        self._next = max((answer.seq for answer in sent), default=-1) + 1
        # Only the handler's own requests: tasks it starts (a submission) run on without it.
        self._owner = asyncio.current_task()
        self._open = True

    def close(self) -> None:
        """The handling ended: later requests are no longer its answers."""
        self._open = False

    def request(self, endpoint: str, data: dict[str, Any]) -> str | None:
        """What to record this request as; None when it is not an answer of this handling."""
        if not self._open or endpoint not in _NEW_MESSAGE:
            return None
        if asyncio.current_task() is not self._owner:
            return None
        return f"{endpoint} {data.get('chat_id')}"

    def sent_before(self, request: str) -> Reply | None:
        """Telegram's answer when the dead holder already made this request (the n-th of its
        kind to this chat), else None."""
        for n, answer in enumerate(self._earlier):
            if answer.request == request:
                del self._earlier[n]
                reply: Reply = json.loads(answer.answer)
                return reply
        return None

    async def record(self, request: str, reply: Reply) -> None:
        """Keep the request and Telegram's answer (a failed write only loses the protection)."""
        answer = Answer(self._next, request, json.dumps(reply))
        self._next += 1
        try:
            await self._updates.add_answer(self._update_id, answer)
        except Exception as exc:
            log.warning("update %s: answer not recorded: %s", self._update_id, type(exc).__name__)


_CURRENT: contextvars.ContextVar[AnswerBook | None] = contextvars.ContextVar(
    "kling_bot_answers", default=None
)


def current() -> AnswerBook | None:
    """The answer book of the update being handled here, if any."""
    return _CURRENT.get()


def use(book: AnswerBook) -> contextvars.Token[AnswerBook | None]:
    """Make `book` the one requests made from here on are recorded in."""
    return _CURRENT.set(book)


def done_with(token: contextvars.Token[AnswerBook | None]) -> None:
    """Go back to the book before `use`."""
    _CURRENT.reset(token)
