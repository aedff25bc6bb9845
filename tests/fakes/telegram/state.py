"""What the fake Telegram holds: chats, messages, files, the updates queue and recorded calls."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.telegram.formatting import command_entities, user_caption
from tests.fakes.telegram.keyboards import require_button
from tests.fakes.telegram.media import FOLDERS, fit, suffix, thumbnail

JSON = dict[str, Any]
MessageKey = tuple[int, int]

POLL_SLICE = 0.05
# Update ids go on across fakes, as a bot's do across its life (a test may start a second fake
# on the same database, which remembers the updates it handled).
_UPDATE_IDS = itertools.count(1)


@dataclass
class FakeUser:
    """A Telegram user who talks to the bot in tests."""

    id: int
    first_name: str = "Ann"
    language_code: str | None = "en"
    username: str | None = None

    def to_dict(self) -> JSON:
        """Return the Telegram User JSON."""
        data: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.username is not None:
            data["username"] = self.username
        if self.language_code is not None:
            data["language_code"] = self.language_code
        return data


@dataclass
class Call:
    """One request the bot made; status, result and error are filled in once it is answered.

    A call held before its handling has status 0 and error "held" until it is released; it keeps
    status 0 (error "client disconnected") or gets 503 if its client or the server go first.
    """

    method: str
    params: dict[str, Any]
    files: dict[str, bytes]
    at: float
    status: int = 200
    result: Any = None
    error: str | None = None
    # The caller's (host, port): which of several bot processes made the call.
    client: tuple[str, int] | None = None

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.status == 200


@dataclass
class StoredFile:
    """A file Telegram keeps: what getFile describes and /file/bot<token>/<path> serves."""

    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes

    def ref(self) -> JSON:
        """Return the fields every Telegram file object carries."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.content),
        }

    def info(self) -> JSON:
        """Return the Telegram File object, as getFile answers it."""
        return {**self.ref(), "file_path": self.file_path}


class TelegramState:
    """Telegram's side of the conversation: what users send, what the bot did, what it sees."""

    def __init__(self, token: str, bot_username: str) -> None:
        self.token = token
        self.bot_username = bot_username
        prefix = token.split(":", 1)[0]
        self.bot_id = int(prefix) if prefix.isdigit() else 1
        self.calls: list[Call] = []
        self.messages: dict[MessageKey, JSON] = {}
        self.file_downloads: list[str] = []
        self.blocked_users: set[int] = set()
        self.webhook_url = ""
        # See FakeTelegram: take an http webhook on loopback, which Telegram refuses.
        self.allow_loopback_http_webhook = False
        self.closed = False
        self._known: dict[MessageKey, JSON] = {}
        self._users: dict[int, FakeUser] = {}
        self._message_ids: dict[int, int] = {}
        self._updates: list[JSON] = []
        # Every update ever enqueued, by id (for resending one).
        self.sent_updates: dict[int, JSON] = {}
        self._allowed_updates: list[str] = []
        # Webhook delivery (see `webhook_updates`): the secret_token setWebhook was given
        # (Telegram echoes it in X-Telegram-Bot-Api-Secret-Token), the updates handed to a
        # deliverer and not yet answered 200, and the last failed delivery (date, message).
        self.webhook_secret_token = ""
        self._in_delivery: set[int] = set()
        self.webhook_last_error: tuple[int, str] | None = None
        self._update_event = asyncio.Event()
        self._update_ids = _UPDATE_IDS
        self._file_numbers = itertools.count(1)
        self._query_ids = itertools.count(4_300_000_000_000_000_001)
        self._files: dict[str, StoredFile] = {}
        self._paths: dict[str, StoredFile] = {}
        self._queries: dict[str, JSON] = {}
        self._answers: dict[str, JSON] = {}
        self._commands: dict[tuple[str, str], list[JSON]] = {}

    # ----- inspection -------------------------------------------------------------------------

    def calls_of(self, method: str) -> list[Call]:
        """Return the calls of one Bot API method (any case), in order."""
        wanted = method.lower()
        return [call for call in self.calls if call.method.lower() == wanted]

    def answered(self, callback_query_id: str) -> dict[str, Any] | None:
        """Return the params of the answerCallbackQuery for that query, if it was answered."""
        answer = self._answers.get(callback_query_id)
        return None if answer is None else dict(answer)

    def my_commands(self, language_code: str = "", scope: JSON | None = None) -> list[JSON]:
        """Return the command list set for a scope and language."""
        return copy.deepcopy(self._commands.get(_commands_key(scope, language_code), []))

    @property
    def pending_updates(self) -> list[JSON]:
        """Return the updates not yet confirmed by getUpdates."""
        return list(self._updates)

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[Call], bool] = lambda c: True,
        *,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[Call]:
        """Wait until at least `count` calls of `method` match `predicate`; return all matches."""
        deadline = time.monotonic() + timeout
        while True:
            found = [call for call in self.calls_of(method) if predicate(call)]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(self._timeout_report(method, count, len(found), timeout))
            await asyncio.sleep(0.01)

    def _timeout_report(self, method: str, count: int, found: int, timeout: float) -> str:
        polls = len(self.calls_of("getUpdates"))
        recent = [call for call in self.calls if call.method != "getUpdates"][-15:]
        lines = [
            f"timed out after {timeout}s waiting for {count} matching {method} call(s); "
            f"found {found}. {polls} getUpdates call(s); last other calls:"
        ]
        lines += [f"  {_describe(call)}" for call in recent] or ["  (none)"]
        return "\n".join(lines)

    # ----- user-side actions ------------------------------------------------------------------

    def send_text(self, user: FakeUser, text: str, chat_id: int | None = None) -> JSON:
        """Enqueue a text message from `user`; a leading /command gets a bot_command entity."""
        content: JSON = {"text": text}
        entities = command_entities(text)
        if entities:
            content["entities"] = entities
        return self._user_message(user, chat_id, content)

    def send_photo(
        self,
        user: FakeUser,
        image: bytes,
        caption: str | None = None,
        *,
        width: int = 1280,
        height: int = 720,
        chat_id: int | None = None,
        media_group_id: str | None = None,
    ) -> JSON:
        """Enqueue a photo message; the largest of its three sizes serves exactly `image`."""
        content: JSON = {"photo": self.photo_sizes(image, width, height)}
        content.update(user_caption(caption))
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        return self._user_message(user, chat_id, content)

    def send_document(
        self,
        user: FakeUser,
        content: bytes,
        file_name: str,
        mime_type: str,
        caption: str | None = None,
        chat_id: int | None = None,
    ) -> JSON:
        """Enqueue a document message."""
        stored = self.store(content, "documents", suffix(file_name, ".bin"))
        document = {**stored.ref(), "file_name": file_name, "mime_type": mime_type}
        return self._user_message(user, chat_id, {"document": document, **user_caption(caption)})

    def send_sticker(self, user: FakeUser, chat_id: int | None = None) -> JSON:
        """Enqueue a static sticker message."""
        stored = self.store(b"RIFF\x00\x00\x00\x00WEBPfake-sticker", "stickers", ".webp")
        sticker = {
            **stored.ref(),
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "\N{THUMBS UP SIGN}",
        }
        return self._user_message(user, chat_id, {"sticker": sticker})

    def send_video(
        self, user: FakeUser, chat_id: int | None = None, *, caption: str | None = None
    ) -> JSON:
        """Enqueue a short video message."""
        stored = self.store(b"\x00\x00\x00\x18ftypmp42fake-video", "videos", ".mp4")
        video = {**stored.ref(), "width": 640, "height": 360, "duration": 3}
        video["mime_type"] = "video/mp4"
        return self._user_message(user, chat_id, {"video": video, **user_caption(caption)})

    def send_voice(self, user: FakeUser, chat_id: int | None = None) -> JSON:
        """Enqueue a voice note."""
        stored = self.store(b"OggSfake-voice", "voice", ".oga")
        voice = {**stored.ref(), "duration": 2, "mime_type": "audio/ogg"}
        return self._user_message(user, chat_id, {"voice": voice})

    def send_animation(self, user: FakeUser, chat_id: int | None = None) -> JSON:
        """Enqueue a GIF animation (Telegram also fills `document` for these)."""
        stored = self.store(b"\x00\x00\x00\x18ftypmp42fake-gif", "animations", ".mp4")
        meta = {"file_name": "animation.gif.mp4", "mime_type": "video/mp4"}
        animation = {**stored.ref(), "width": 320, "height": 240, "duration": 1, **meta}
        document = {**stored.ref(), **meta}
        return self._user_message(user, chat_id, {"animation": animation, "document": document})

    def tap(self, user: FakeUser, message: JSON, callback_data: str, *, force: bool = False) -> str:
        """Enqueue a tap on a bot message's inline button; return the callback query id."""
        if not force:
            require_button(message, callback_data)
        chat_id = message["chat"]["id"]
        current = self._known.get((chat_id, message["message_id"]), message)
        query_id = str(next(self._query_ids))
        query: JSON = {
            "id": query_id,
            "from": user.to_dict(),
            "message": copy.deepcopy(current),
            "chat_instance": str(-abs(chat_id) * 7919),
            "data": callback_data,
        }
        self._queries[query_id] = query
        self._enqueue("callback_query", query)
        return query_id

    def add_file(self, content: bytes, suffix: str = ".jpg") -> JSON:
        """Store bytes as a downloadable file; return its getFile-style description."""
        return self.store(content, FOLDERS.get(suffix.lower(), "documents"), suffix).info()

    # ----- files ------------------------------------------------------------------------------

    def store(self, content: bytes, folder: str, suffix: str) -> StoredFile:
        """Keep `content` as a new file under `folder`; return it."""
        number = next(self._file_numbers)
        stored = StoredFile(
            file_id=f"BQACAgIAAx-fake-{number:05d}",
            file_unique_id=f"AgADfake{number:05d}",
            file_path=f"{folder}/file_{number}{suffix}",
            content=content,
        )
        self._files[stored.file_id] = stored
        self._paths[stored.file_path] = stored
        return stored

    def file(self, file_id: str) -> StoredFile | None:
        """Return the stored file with this file_id."""
        return self._files.get(file_id)

    def file_at(self, path: str) -> StoredFile | None:
        """Return the stored file at this file_path."""
        return self._paths.get(path)

    def photo_sizes(self, image: bytes, width: int, height: int) -> list[JSON]:
        """Store a photo as Telegram does, as two thumbnails and the original; return the sizes."""
        sizes = []
        for box in (90, 320):
            thumb_w, thumb_h = fit(width, height, box)
            stored = self.store(thumbnail(image, thumb_w, thumb_h), "photos", ".jpg")
            sizes.append({**stored.ref(), "width": thumb_w, "height": thumb_h})
        full = self.store(image, "photos", ".jpg")
        sizes.append({**full.ref(), "width": width, "height": height})
        return sizes

    # ----- chats and messages -----------------------------------------------------------------

    def chat(self, chat_id: int) -> JSON:
        """Return the Chat JSON: negative ids are groups, the rest private chats with users."""
        if chat_id < -1_000_000_000_000:
            return {"id": chat_id, "type": "supergroup", "title": "Test supergroup"}
        if chat_id <= 0:
            return {"id": chat_id, "type": "group", "title": "Test group"}
        chat: JSON = {"id": chat_id, "type": "private", "first_name": "User"}
        user = self._users.get(chat_id)
        if user is not None:
            chat["first_name"] = user.first_name
            if user.username is not None:
                chat["username"] = user.username
        return chat

    def bot_user(self) -> JSON:
        """Return the bot's own User JSON."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Kling Test Bot",
            "username": self.bot_username,
        }

    def known_message(self, key: MessageKey) -> JSON | None:
        """Return a message that exists in a chat (sent by a user or the bot, not deleted)."""
        return self._known.get(key)

    def bot_message(
        self, chat_id: int, content: JSON, reply_to: JSON | None, markup: JSON | None
    ) -> JSON:
        """Store a message the bot sent; return a copy of it."""
        message: JSON = {
            "message_id": self._new_message_id(chat_id),
            "from": self.bot_user(),
            "chat": self.chat(chat_id),
            "date": int(time.time()),
        }
        if reply_to is not None:
            message["reply_to_message"] = {
                k: copy.deepcopy(v) for k, v in reply_to.items() if k != "reply_to_message"
            }
        message.update(content)
        if markup is not None:
            message["reply_markup"] = markup
        key = (chat_id, message["message_id"])
        self.messages[key] = self._known[key] = message
        return copy.deepcopy(message)

    def replace_message(self, key: MessageKey, message: JSON) -> JSON:
        """Store an edited bot message in place of the old one; return a copy of it."""
        self.messages[key] = self._known[key] = message
        return copy.deepcopy(message)

    def delete_message(self, key: MessageKey) -> bool:
        """Delete a message from its chat; return whether it existed."""
        if self._known.pop(key, None) is None:
            return False
        self.messages.pop(key, None)
        return True

    def _new_message_id(self, chat_id: int) -> int:
        self._message_ids[chat_id] = self._message_ids.get(chat_id, 0) + 1
        return self._message_ids[chat_id]

    def _user_message(self, user: FakeUser, chat_id: int | None, content: JSON) -> JSON:
        self._users[user.id] = user
        chat = user.id if chat_id is None else chat_id
        message: JSON = {
            "message_id": self._new_message_id(chat),
            "from": user.to_dict(),
            "chat": self.chat(chat),
            "date": int(time.time()),
            **content,
        }
        self._known[(chat, message["message_id"])] = message
        self._enqueue("message", copy.deepcopy(message))
        return copy.deepcopy(message)

    # ----- callback queries and commands ------------------------------------------------------

    def query_open(self, query_id: str) -> bool:
        """Whether a callback query exists and is not answered yet."""
        return query_id in self._queries and query_id not in self._answers

    def answer_query(self, query_id: str, params: JSON) -> None:
        """Record the answer to a callback query."""
        self._answers[query_id] = dict(params)

    def set_my_commands(self, scope: Any, language_code: Any, commands: list[JSON]) -> None:
        """Set the command list of a scope and language."""
        self._commands[_commands_key(scope, language_code)] = copy.deepcopy(commands)

    def delete_my_commands(self, scope: Any, language_code: Any) -> None:
        """Delete the command list of a scope and language."""
        self._commands.pop(_commands_key(scope, language_code), None)

    # ----- the updates queue ------------------------------------------------------------------

    def _enqueue(self, kind: str, payload: JSON) -> None:
        update_id = next(self._update_ids)
        update = {"update_id": update_id, kind: payload}
        self._updates.append(update)
        self.sent_updates[update_id] = copy.deepcopy(update)
        self.wake_pollers()

    def resend(self, update_id: int) -> JSON:
        """Offer an update again, as Telegram does when the getUpdates consumer that fetched it
        stopped before confirming it (or a webhook was not answered 200); the update."""
        update = copy.deepcopy(self.sent_updates[update_id])
        self._updates.append(update)
        self._updates.sort(key=lambda u: int(u["update_id"]))
        self.wake_pollers()
        return update

    def wake_pollers(self) -> None:
        """Wake every pending long poll."""
        # Swap events so that waiters woken now don't see later sets as their own.
        event, self._update_event = self._update_event, asyncio.Event()
        event.set()

    def allow_updates(self, kinds: list[str]) -> None:
        """Deliver only these kinds of update from now on (all when empty)."""
        self._allowed_updates = list(kinds)

    def confirm_updates(self, offset: int) -> None:
        """Forget the updates a getUpdates offset confirms (negative: keep the last -offset)."""
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    def drop_updates(self) -> None:
        """Forget every pending update (drop_pending_updates)."""
        self._updates.clear()

    def deliverable_updates(self) -> list[JSON]:
        """Return copies of the pending updates of the allowed kinds."""
        if not self._allowed_updates:
            return copy.deepcopy(self._updates)
        wanted = set(self._allowed_updates)
        return [copy.deepcopy(u) for u in self._updates if wanted & u.keys()]

    # ----- webhook delivery -------------------------------------------------------------------

    def webhook_updates(self) -> list[JSON]:
        """Hand the pending updates no deliverer has yet to a webhook deliverer: copies, oldest
        first, of the allowed kinds. Each stays pending (getWebhookInfo counts it) until
        `webhook_delivered`, as Telegram keeps an update until its webhook answers 200."""
        ready = [u for u in self.deliverable_updates() if u["update_id"] not in self._in_delivery]
        self._in_delivery.update(int(u["update_id"]) for u in ready)
        return ready

    def webhook_waiting(self) -> bool:
        """Whether a pending update waits that no deliverer has been handed yet."""
        return any(u["update_id"] not in self._in_delivery for u in self.deliverable_updates())

    def webhook_delivered(self, update_id: int) -> None:
        """The webhook answered the update 200: Telegram forgets it."""
        self._in_delivery.discard(update_id)
        self._updates = [u for u in self._updates if u["update_id"] != update_id]

    def webhook_failed(self, message: str) -> None:
        """A delivery failed (no answer, or not 200): getWebhookInfo's last error. The update
        stays pending, with its deliverer, which sends it again."""
        self.webhook_last_error = (int(time.time()), message)

    async def wait_for_update(self, deadline: float) -> None:
        """Wait for a new update, at most until `deadline` and at most one poll slice."""
        event = self._update_event
        wait = min(POLL_SLICE, max(deadline - time.monotonic(), 0.0))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await event.wait()


def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
    scope = scope if isinstance(scope, dict) else {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(language_code or "")


def _describe(call: Call) -> str:
    params = json.dumps(call.params, ensure_ascii=False, default=str)
    if len(params) > 160:
        params = params[:157] + "..."
    files = f" files={sorted(call.files)}" if call.files else ""
    error = f" {call.error!r}" if call.error else ""
    return f"{call.method} -> {call.status}{error} {params}{files}"
