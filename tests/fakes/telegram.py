"""A loopback fake of the Telegram Bot API that a real PTB Application can talk to.

Faults: ``fail_next(method, status=...)`` fails the next calls of a method (any case);
without a description, 5xx statuses say their HTTP phrase, and 502-504 come as nginx's HTML
page, as api.telegram.org sends them (getUpdates included: PTB raises NetworkError).

Stopping the bot at an exact step: ``hold(endpoint, after=False, times=None)`` holds the next
``times`` calls (all when None) of a Bot API method (any case), or "file" for downloads from
``/file/bot<token>/...``, until ``Hold.release()``. A held call is recorded in ``calls`` first;
held before the work it is not handled (status 0, error "held"), with ``after=True`` it is
handled (message stored, file served) and only the answer waits. Each call is taken by at most
one hold, the oldest active one. ``delay(method, seconds, times=None)`` answers late, after the
work; ``seconds=0`` clears it. A held or delayed call whose client leaves (the bot was killed)
ends quietly; one still waiting when the server shuts down (the test leaves ``serve()``) or at
``shutdown()`` is answered 503. Release holds before stopping a bot that waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import html
import inspect
import io
import itertools
import json
import mimetypes
import re
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.fakes.common import Gates, Outcome
from tests.fakes.common import Hold as Hold

JSON = dict[str, Any]
MessageKey = tuple[int, int]

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_ANSWER_TEXT = 200
MAX_CALLBACK_DATA_BYTES = 64
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
POLL_SLICE = 0.05

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
BLOCKED = "Forbidden: bot was blocked by the user"
DEFAULT_FAULT = "Bad Request: test fault"
HELD = "held"
CLIENT_GONE = "client disconnected"
UNAVAILABLE = "Service Unavailable"
# api.telegram.org's nginx answers these itself, with an HTML page instead of JSON.
_NGINX_STATUSES = frozenset({502, 503, 504})

# Form values that are free text or file references: never JSON-decode these ("42" stays "42").
_TEXT_FIELDS = frozenset(
    {
        "text",
        "caption",
        "callback_query_id",
        "inline_message_id",
        "file_id",
        "parse_mode",
        "url",
        "secret_token",
        "ip_address",
        "action",
        "language_code",
        "emoji",
        "title",
        "name",
        "description",
        "short_description",
        "query",
        "message_effect_id",
        "business_connection_id",
        "photo",
        "video",
        "document",
        "animation",
        "audio",
        "voice",
        "video_note",
        "sticker",
        "thumbnail",
        "cover",
    }
)
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_BOT_COMMAND_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)>")
_ATTR_RE = re.compile(r"([a-zA-Z-]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+))?")
_HTML_ENTITY_RE = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
_FOLDERS = {
    ".jpg": "photos",
    ".jpeg": "photos",
    ".png": "photos",
    ".webp": "stickers",
    ".mp4": "videos",
    ".oga": "voice",
    ".ogg": "voice",
}


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

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.status == 200


class ApiError(Exception):
    """An error reply of the Bot API."""

    def __init__(
        self, status: int, description: str, retry_after: int | None = None, *, page: bool = False
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after
        self.page = page

    def response(self) -> Response:
        """Return the Bot API error body (or nginx's HTML page) with the matching HTTP status."""
        if self.page:
            title = f"{self.status} {self.description}"
            html_page = (
                f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
                f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
                "</body>\r\n</html>\r\n"
            )
            return HTMLResponse(html_page, status_code=self.status)
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return JSONResponse(body, status_code=self.status)


@dataclass
class _Fault:
    status: int
    description: str
    retry_after: int | None
    remaining: int
    page: bool


@dataclass
class _Upload:
    filename: str
    content_type: str
    content: bytes


@dataclass
class _StoredFile:
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


@dataclass
class _Ctx:
    params: dict[str, Any]
    uploads: dict[str, _Upload]
    request: Request


class _PollState:
    """One pending getUpdates long poll."""

    def __init__(self, request: Request, deadline: float) -> None:
        self.request = request
        self.deadline = deadline
        self.keep_alive_at_start = _keep_alive(request)

    async def gone(self) -> bool:
        """Whether the client hung up or the server began shutting down."""
        if await self.request.is_disconnected():
            return True
        # uvicorn's graceful shutdown only flips keep_alive on in-flight requests; without this
        # a pending long poll would hold the server open until its timeout.
        return self.keep_alive_at_start and not _keep_alive(self.request)


class FakeTelegram:
    """An in-memory Telegram Bot API served as a Starlette app."""

    def __init__(
        self, token: str = "123456:TEST-TOKEN", bot_username: str = "kling_test_bot"
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        prefix = token.split(":", 1)[0]
        self.bot_id = int(prefix) if prefix.isdigit() else 1
        self.calls: list[Call] = []
        self.messages: dict[MessageKey, JSON] = {}
        self.file_downloads: list[str] = []
        self.blocked_users: set[int] = set()
        self.webhook_url = ""
        self._known: dict[MessageKey, JSON] = {}
        self._users: dict[int, FakeUser] = {}
        self._message_ids: dict[int, int] = {}
        self._updates: list[JSON] = []
        self._allowed_updates: list[str] = []
        self._update_event = asyncio.Event()
        self._closed = False
        self._update_ids = itertools.count(1)
        self._file_numbers = itertools.count(1)
        self._query_ids = itertools.count(4_300_000_000_000_000_001)
        self._files: dict[str, _StoredFile] = {}
        self._paths: dict[str, _StoredFile] = {}
        self._queries: dict[str, JSON] = {}
        self._answers: dict[str, JSON] = {}
        self._commands: dict[tuple[str, str], list[JSON]] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._gates = Gates(None)
        self._handlers: dict[str, Callable[[_Ctx], Any]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getMyCommands": self._get_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "getFile": self._get_file,
            "sendVideo": self._send_video,
            "sendDocument": self._send_document,
            "sendPhoto": self._send_photo,
            "sendChatAction": self._send_chat_action,
            "close": self._true,
            "logOut": self._true,
        }
        self._canonical = {name.lower(): name for name in self._handlers}
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
            ]
        )

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
        return list(self._commands.get(_commands_key(scope, language_code), []))

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

    # ----- fault knobs ------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int = 400,
        description: str = DEFAULT_FAULT,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of `method` fail with this error.

        Without a description, 5xx statuses say their HTTP phrase; 502-504 then come as nginx's
        HTML page, as api.telegram.org sends them.
        """
        page = False
        if status == 429:
            retry_after = 1 if retry_after is None else retry_after
            if description == DEFAULT_FAULT:
                description = f"Too Many Requests: retry after {retry_after}"
        elif status >= 500 and description == DEFAULT_FAULT:
            description = _phrase(status)
            page = status in _NGINX_STATUSES
        fault = _Fault(status, description, retry_after, times, page)
        self._faults.setdefault(method.lower(), deque()).append(fault)

    def hold(self, endpoint: str, *, after: bool = False, times: int | None = None) -> Hold:
        """Hold the next `times` calls of a method, or "file" downloads (all when None).

        Before the work (``after=False``) the call is recorded but not handled; after it, the
        work is done (message stored, file served) and only the answer waits.
        """
        return self._gates.hold(endpoint.lower(), after=after, times=times)

    def delay(self, method: str, seconds: float, times: int | None = None) -> None:
        """Answer the next `times` calls of `method` (all when None) `seconds` after the work."""
        self._gates.delay(method.lower(), seconds, times)

    def shutdown(self) -> None:
        """Release every long poll now, answer held calls 503 and later polls at once."""
        self._closed = True
        self._gates.closed = True
        self._wake_pollers()

    # ----- user-side actions ------------------------------------------------------------------

    def send_text(self, user: FakeUser, text: str, chat_id: int | None = None) -> JSON:
        """Enqueue a text message from `user`; a leading /command gets a bot_command entity."""
        content: JSON = {"text": text}
        entities = _command_entities(text)
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
        content: JSON = {"photo": self._photo_sizes(image, width, height)}
        content.update(_user_caption(caption))
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
        stored = self._store(content, "documents", _suffix(file_name, ".bin"))
        document = {**stored.ref(), "file_name": file_name, "mime_type": mime_type}
        return self._user_message(user, chat_id, {"document": document, **_user_caption(caption)})

    def send_sticker(self, user: FakeUser, chat_id: int | None = None) -> JSON:
        """Enqueue a static sticker message."""
        stored = self._store(b"RIFF\x00\x00\x00\x00WEBPfake-sticker", "stickers", ".webp")
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
        stored = self._store(b"\x00\x00\x00\x18ftypmp42fake-video", "videos", ".mp4")
        video = {**stored.ref(), "width": 640, "height": 360, "duration": 3}
        video["mime_type"] = "video/mp4"
        return self._user_message(user, chat_id, {"video": video, **_user_caption(caption)})

    def send_voice(self, user: FakeUser, chat_id: int | None = None) -> JSON:
        """Enqueue a voice note."""
        stored = self._store(b"OggSfake-voice", "voice", ".oga")
        voice = {**stored.ref(), "duration": 2, "mime_type": "audio/ogg"}
        return self._user_message(user, chat_id, {"voice": voice})

    def send_animation(self, user: FakeUser, chat_id: int | None = None) -> JSON:
        """Enqueue a GIF animation (Telegram also fills `document` for these)."""
        stored = self._store(b"\x00\x00\x00\x18ftypmp42fake-gif", "animations", ".mp4")
        meta = {"file_name": "animation.gif.mp4", "mime_type": "video/mp4"}
        animation = {**stored.ref(), "width": 320, "height": 240, "duration": 1, **meta}
        document = {**stored.ref(), **meta}
        return self._user_message(user, chat_id, {"animation": animation, "document": document})

    def tap(self, user: FakeUser, message: JSON, callback_data: str, *, force: bool = False) -> str:
        """Enqueue a tap on a bot message's inline button; return the callback query id."""
        if not force:
            _require_button(message, callback_data)
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
        return self._store(content, _FOLDERS.get(suffix.lower(), "documents"), suffix).info()

    # ----- internals: state -------------------------------------------------------------------

    def _store(self, content: bytes, folder: str, suffix: str) -> _StoredFile:
        number = next(self._file_numbers)
        stored = _StoredFile(
            file_id=f"BQACAgIAAx-fake-{number:05d}",
            file_unique_id=f"AgADfake{number:05d}",
            file_path=f"{folder}/file_{number}{suffix}",
            content=content,
        )
        self._files[stored.file_id] = stored
        self._paths[stored.file_path] = stored
        return stored

    def _photo_sizes(self, image: bytes, width: int, height: int) -> list[JSON]:
        sizes = []
        for box in (90, 320):
            thumb_w, thumb_h = _fit(width, height, box)
            stored = self._store(_thumbnail(image, thumb_w, thumb_h), "photos", ".jpg")
            sizes.append({**stored.ref(), "width": thumb_w, "height": thumb_h})
        full = self._store(image, "photos", ".jpg")
        sizes.append({**full.ref(), "width": width, "height": height})
        return sizes

    def _new_message_id(self, chat_id: int) -> int:
        self._message_ids[chat_id] = self._message_ids.get(chat_id, 0) + 1
        return self._message_ids[chat_id]

    def _chat(self, chat_id: int) -> JSON:
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

    def _bot_user(self) -> JSON:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Kling Test Bot",
            "username": self.bot_username,
        }

    def _user_message(self, user: FakeUser, chat_id: int | None, content: JSON) -> JSON:
        self._users[user.id] = user
        chat = user.id if chat_id is None else chat_id
        message: JSON = {
            "message_id": self._new_message_id(chat),
            "from": user.to_dict(),
            "chat": self._chat(chat),
            "date": int(time.time()),
            **content,
        }
        self._known[(chat, message["message_id"])] = message
        self._enqueue("message", copy.deepcopy(message))
        return copy.deepcopy(message)

    def _enqueue(self, kind: str, payload: JSON) -> None:
        self._updates.append({"update_id": next(self._update_ids), kind: payload})
        self._wake_pollers()

    def _wake_pollers(self) -> None:
        # Swap events so that waiters woken now don't see later sets as their own.
        event, self._update_event = self._update_event, asyncio.Event()
        event.set()

    def _bot_message(self, chat_id: int, params: JSON, content: JSON) -> JSON:
        reply = self._reply_to(chat_id, params)
        markup = _inline_markup(params)
        message: JSON = {
            "message_id": self._new_message_id(chat_id),
            "from": self._bot_user(),
            "chat": self._chat(chat_id),
            "date": int(time.time()),
        }
        if reply is not None:
            message["reply_to_message"] = reply
        message.update(content)
        if markup is not None:
            message["reply_markup"] = markup
        key = (chat_id, message["message_id"])
        self.messages[key] = self._known[key] = message
        return copy.deepcopy(message)

    def _reply_to(self, chat_id: int, params: JSON) -> JSON | None:
        reply_parameters = params.get("reply_parameters")
        if isinstance(reply_parameters, dict):
            message_id = reply_parameters.get("message_id")
        else:
            message_id = params.get("reply_to_message_id")
        if not isinstance(message_id, int):
            return None
        known = self._known.get((chat_id, message_id))
        if known is None:
            return {"message_id": message_id, "date": int(time.time()), "chat": self._chat(chat_id)}
        return {k: copy.deepcopy(v) for k, v in known.items() if k != "reply_to_message"}

    # ----- internals: HTTP --------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        name = request.path_params["method"]
        try:
            params, uploads = await _read_params(request)
        except ApiError as err:
            self.calls.append(Call(name, {}, {}, time.monotonic(), err.status, None, str(err)))
            return err.response()
        files = {field_name: upload.content for field_name, upload in uploads.items()}
        call = Call(self._canonical.get(name.lower(), name), params, files, time.monotonic())
        self.calls.append(call)
        plan = self._gates.take(name.lower())
        if plan.before is not None:
            call.status, call.error = 0, HELD
            outcome = await self._gates.before_work(request.receive, plan)
            if outcome != "go":
                return _dropped(call, outcome)
            call.status, call.error = 200, None
        response: Response
        try:
            result = await self._dispatch(request, call, _Ctx(params, uploads, request))
        except ApiError as err:
            call.status, call.error = err.status, err.description
            response = err.response()
        else:
            call.result = result
            response = JSONResponse({"ok": True, "result": result})
        # A client that left never reads the answer; uvicorn drops it quietly.
        if await self._gates.before_answer(request.receive, plan) == "closed":
            return ApiError(503, UNAVAILABLE).response()
        return response

    async def _dispatch(self, request: Request, call: Call, ctx: _Ctx) -> Any:
        if request.path_params["token"] != self.token:
            raise ApiError(401, "Unauthorized")
        handler = self._handlers.get(call.method)
        if handler is None:
            raise ApiError(404, "Not Found")
        self._raise_fault(call.method)
        chat_id = ctx.params.get("chat_id")
        if isinstance(chat_id, int) and chat_id in self.blocked_users:
            raise ApiError(403, BLOCKED)
        result = handler(ctx)
        return await result if inspect.isawaitable(result) else result

    def _raise_fault(self, method: str) -> None:
        faults = self._faults.get(method.lower())
        if not faults:
            return
        fault = faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            faults.popleft()
        raise ApiError(fault.status, fault.description, fault.retry_after, page=fault.page)

    async def _download(self, request: Request) -> Response:
        plan = self._gates.take("file")
        if await self._gates.before_work(request.receive, plan) != "go":
            return ApiError(503, UNAVAILABLE).response()
        response = self._file(request)
        if await self._gates.before_answer(request.receive, plan) == "closed":
            return ApiError(503, UNAVAILABLE).response()
        return response

    def _file(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return ApiError(401, "Unauthorized").response()
        stored = self._paths.get(request.path_params["path"])
        if stored is None:
            return ApiError(404, "Not Found").response()
        self.file_downloads.append(stored.file_path)
        media_type = mimetypes.guess_type(stored.file_path)[0] or "application/octet-stream"
        return Response(stored.content, media_type=media_type)

    # ----- Bot API methods --------------------------------------------------------------------

    def _true(self, ctx: _Ctx) -> bool:
        return True

    def _get_me(self, ctx: _Ctx) -> JSON:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, ctx: _Ctx) -> list[JSON]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        params = ctx.params
        limit = min(max(_int_param(params, "limit", 100), 1), 100)
        # Telegram wants whole seconds; fractions are allowed here to keep tests fast.
        timeout = max(_number_param(params, "timeout", 0), 0.0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]
        self._confirm(_int_param(params, "offset", 0))
        poll = _PollState(ctx.request, time.monotonic() + timeout)
        while True:
            ready = self._deliverable()[:limit]
            if ready or self._closed or time.monotonic() >= poll.deadline:
                return ready
            await self._wait_for_update(poll.deadline)
            if await poll.gone():
                return []

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    def _deliverable(self) -> list[JSON]:
        if not self._allowed_updates:
            return copy.deepcopy(self._updates)
        wanted = set(self._allowed_updates)
        return [copy.deepcopy(u) for u in self._updates if wanted & u.keys()]

    async def _wait_for_update(self, deadline: float) -> None:
        event = self._update_event
        wait = min(POLL_SLICE, max(deadline - time.monotonic(), 0.0))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await event.wait()

    def _delete_webhook(self, ctx: _Ctx) -> bool:
        self.webhook_url = ""
        if ctx.params.get("drop_pending_updates") is True:
            self._updates.clear()
        return True

    def _set_webhook(self, ctx: _Ctx) -> bool:
        self.webhook_url = str(ctx.params.get("url", ""))
        if ctx.params.get("drop_pending_updates") is True:
            self._updates.clear()
        return True

    def _get_webhook_info(self, ctx: _Ctx) -> JSON:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def _set_my_commands(self, ctx: _Ctx) -> bool:
        commands = ctx.params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, 'Bad Request: parameter "commands" is required')
        for command in commands:
            _check_bot_command(command)
        key = _commands_key(ctx.params.get("scope"), ctx.params.get("language_code", ""))
        self._commands[key] = copy.deepcopy(commands)
        return True

    def _delete_my_commands(self, ctx: _Ctx) -> bool:
        key = _commands_key(ctx.params.get("scope"), ctx.params.get("language_code", ""))
        self._commands.pop(key, None)
        return True

    def _get_my_commands(self, ctx: _Ctx) -> list[JSON]:
        key = _commands_key(ctx.params.get("scope"), ctx.params.get("language_code", ""))
        return copy.deepcopy(self._commands.get(key, []))

    def _send_message(self, ctx: _Ctx) -> JSON:
        chat_id = _chat_id(ctx.params)
        text, entities = _message_text(ctx.params)
        content: JSON = {"text": text}
        if entities:
            content["entities"] = entities
        return self._bot_message(chat_id, ctx.params, content)

    def _send_video(self, ctx: _Ctx) -> JSON:
        chat_id = _chat_id(ctx.params)
        caption = _caption_fields(ctx.params)
        stored, upload = self._input_file(ctx, "video", "videos", ".mp4")
        video: JSON = {
            **stored.ref(),
            "width": _int_param(ctx.params, "width", 1280),
            "height": _int_param(ctx.params, "height", 720),
            "duration": _int_param(ctx.params, "duration", 5),
            "mime_type": "video/mp4",
        }
        if upload is not None:
            video["file_name"] = upload.filename
        return self._bot_message(chat_id, ctx.params, {"video": video, **caption})

    def _send_document(self, ctx: _Ctx) -> JSON:
        chat_id = _chat_id(ctx.params)
        caption = _caption_fields(ctx.params)
        stored, upload = self._input_file(ctx, "document", "documents", ".bin")
        document: JSON = stored.ref()
        if upload is not None:
            document["file_name"] = upload.filename
            document["mime_type"] = _mime_type(upload)
        return self._bot_message(chat_id, ctx.params, {"document": document, **caption})

    def _send_photo(self, ctx: _Ctx) -> JSON:
        chat_id = _chat_id(ctx.params)
        caption = _caption_fields(ctx.params)
        stored, _ = self._input_file(ctx, "photo", "photos", ".jpg")
        width, height = _image_size(stored.content)
        photo = self._photo_sizes(stored.content, width, height)
        return self._bot_message(chat_id, ctx.params, {"photo": photo, **caption})

    def _input_file(
        self, ctx: _Ctx, name: str, folder: str, suffix: str
    ) -> tuple[_StoredFile, _Upload | None]:
        value = ctx.params.get(name)
        upload = ctx.uploads.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            upload = ctx.uploads.get(value.removeprefix("attach://"))
        if upload is not None:
            if len(upload.content) > MAX_UPLOAD_BYTES:
                raise ApiError(413, "Request Entity Too Large")
            return self._store(upload.content, folder, _suffix(upload.filename, suffix)), upload
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return self._store(f"downloaded from {value}".encode(), folder, suffix), None
        if isinstance(value, str) and value in self._files:
            return self._files[value], None
        if value:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        raise ApiError(400, f"Bad Request: there is no {name} in the request")

    def _send_chat_action(self, ctx: _Ctx) -> bool:
        _chat_id(ctx.params)
        if ctx.params.get("action") not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _editable(self, params: JSON) -> tuple[MessageKey, JSON]:
        if "inline_message_id" in params:
            raise ApiError(400, "Bad Request: MESSAGE_ID_INVALID")
        key = (_chat_id(params), params.get("message_id"))
        if not isinstance(key[1], int):
            raise ApiError(400, "Bad Request: message to edit not found")
        message = self.messages.get((key[0], key[1]))
        if message is None:
            if (key[0], key[1]) in self._known:
                raise ApiError(400, "Bad Request: message can't be edited")
            raise ApiError(400, "Bad Request: message to edit not found")
        return (key[0], key[1]), message

    def _apply_edit(self, key: MessageKey, old: JSON, changes: JSON) -> JSON:
        new = dict(old)
        for name, value in changes.items():
            if value is None:
                new.pop(name, None)
            else:
                new[name] = value
        if _without_edit_date(new) == _without_edit_date(old):
            raise ApiError(400, NOT_MODIFIED)
        new["edit_date"] = int(time.time())
        self.messages[key] = self._known[key] = new
        return copy.deepcopy(new)

    def _edit_message_text(self, ctx: _Ctx) -> JSON:
        key, old = self._editable(ctx.params)
        if "text" not in old:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text, entities = _message_text(ctx.params)
        changes = {"text": text, "entities": entities, "reply_markup": _inline_markup(ctx.params)}
        return self._apply_edit(key, old, changes)

    def _edit_message_caption(self, ctx: _Ctx) -> JSON:
        key, old = self._editable(ctx.params)
        if "text" in old:
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        changes: JSON = {"caption": None, "caption_entities": None}
        changes.update(_caption_fields(ctx.params))
        changes["reply_markup"] = _inline_markup(ctx.params)
        return self._apply_edit(key, old, changes)

    def _edit_message_reply_markup(self, ctx: _Ctx) -> JSON:
        key, old = self._editable(ctx.params)
        return self._apply_edit(key, old, {"reply_markup": _inline_markup(ctx.params)})

    def _delete_message(self, ctx: _Ctx) -> bool:
        key = (_chat_id(ctx.params), ctx.params.get("message_id"))
        if not isinstance(key[1], int) or (key[0], key[1]) not in self._known:
            raise ApiError(400, "Bad Request: message to delete not found")
        self._known.pop((key[0], key[1]))
        self.messages.pop((key[0], key[1]), None)
        return True

    def _answer_callback_query(self, ctx: _Ctx) -> bool:
        query_id = str(ctx.params.get("callback_query_id", ""))
        if query_id not in self._queries or query_id in self._answers:
            raise ApiError(400, QUERY_TOO_OLD)
        text = ctx.params.get("text")
        if text is not None and len(str(text)) > MAX_ANSWER_TEXT:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self._answers[query_id] = dict(ctx.params)
        return True

    def _get_file(self, ctx: _Ctx) -> JSON:
        stored = self._files.get(str(ctx.params.get("file_id", "")))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if len(stored.content) > MAX_DOWNLOAD_BYTES:
            raise ApiError(400, "Bad Request: file is too big")
        return stored.info()


# ----- request decoding ---------------------------------------------------------------------


async def _read_params(request: Request) -> tuple[dict[str, Any], dict[str, _Upload]]:
    raw: dict[str, Any] = dict(request.query_params)
    uploads: dict[str, _Upload] = {}
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    mime = content_type.split(";", 1)[0].strip().lower()
    if body and mime == "application/json":
        try:
            loaded = json.loads(body)
        except ValueError as err:
            raise ApiError(400, "Bad Request: can't parse JSON object") from err
        if not isinstance(loaded, dict):
            raise ApiError(400, "Bad Request: can't parse JSON object")
        raw.update(loaded)
    elif body and mime == "multipart/form-data":
        fields, uploads = _parse_multipart(body, content_type)
        raw.update(fields)
    elif body:
        raw.update(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
    params = {k: _decode_value(k, v) if isinstance(v, str) else v for k, v in raw.items()}
    return params, uploads


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _decode_value(name: str, raw: str) -> Any:
    """Decode a form value that holds JSON (numbers, objects, arrays, booleans)."""
    if name in _TEXT_FIELDS:
        return raw
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        return raw
    return raw if isinstance(value, str) or value is None else value


def _header_param(header: str, name: str) -> str | None:
    quoted = re.search(rf'(?:^|;)\s*{name}="((?:[^"\\]|\\.)*)"', header, re.IGNORECASE)
    if quoted:
        return re.sub(r"\\(.)", r"\1", quoted.group(1))
    bare = re.search(rf"(?:^|;)\s*{name}=([^;\s]*)", header, re.IGNORECASE)
    return bare.group(1) if bare else None


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, _Upload]]:
    """Split a multipart/form-data body into text fields and file uploads."""
    boundary = _header_param(content_type, "boundary")
    if not boundary:
        raise ApiError(400, "Bad Request: multipart boundary is missing")
    fields: dict[str, str] = {}
    uploads: dict[str, _Upload] = {}
    for part in (b"\r\n" + body).split(b"\r\n--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = _part_headers(head.decode("utf-8", "replace"))
        disposition = headers.get("content-disposition", "")
        name = _header_param(disposition, "name")
        filename = _header_param(disposition, "filename")
        if name is None:
            continue
        if filename is None:
            fields[name] = content.decode("utf-8", "replace")
        else:
            content_type = headers.get("content-type", "application/octet-stream")
            uploads[name] = _Upload(filename, content_type, content)
    return fields, uploads


def _part_headers(head: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    return headers


def _dropped(call: Call, outcome: Outcome) -> Response:
    """Record how a call held before its handling ended, and answer it 503."""
    if outcome == "gone":
        call.error = CLIENT_GONE
    else:
        call.status, call.error = 503, UNAVAILABLE
    return ApiError(503, UNAVAILABLE).response()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Server Error"


def _keep_alive(request: Request) -> bool:
    cycle = getattr(request.receive, "__self__", None)
    return bool(getattr(cycle, "keep_alive", True))


# ----- message content ------------------------------------------------------------------------


def _number_param(params: JSON, name: str, default: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f"Bad Request: wrong parameter {name} in request")
    return float(value)


def _int_param(params: JSON, name: str, default: int) -> int:
    return int(_number_param(params, name, default))


def _chat_id(params: JSON) -> int:
    value = params.get("chat_id")
    if value is None or value == "":
        raise ApiError(400, "Bad Request: chat_id is empty")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, "Bad Request: chat not found")
    return value


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _command_entities(text: str) -> list[JSON]:
    match = _COMMAND_RE.match(text)
    if match is None:
        return []
    return [{"type": "bot_command", "offset": 0, "length": _utf16_len(match.group())}]


def _user_caption(caption: str | None) -> JSON:
    if caption is None:
        return {}
    fields: JSON = {"caption": caption}
    entities = _command_entities(caption)
    if entities:
        fields["caption_entities"] = entities
    return fields


def _formatted(text: str, params: JSON, entities_field: str) -> tuple[str, list[JSON] | None]:
    """Apply parse_mode or explicit entities the way Telegram stores the result."""
    explicit = params.get(entities_field)
    if isinstance(explicit, list):
        return text, explicit or None
    if str(params.get("parse_mode", "")).upper() == "HTML":
        plain, entities = parse_html(text)
        return plain, entities or None
    return text, None


def _message_text(params: JSON) -> tuple[str, list[JSON] | None]:
    raw = params.get("text")
    text, entities = _formatted("" if raw is None else str(raw), params, "entities")
    if not text.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if len(text) > MAX_TEXT:
        raise ApiError(400, "Bad Request: message is too long")
    return text, entities


def _caption_fields(params: JSON) -> JSON:
    raw = params.get("caption")
    if raw is None:
        return {}
    caption, entities = _formatted(str(raw), params, "caption_entities")
    if len(caption) > MAX_CAPTION:
        raise ApiError(400, "Bad Request: message caption is too long")
    if not caption:
        return {}
    return {"caption": caption, "caption_entities": entities} if entities else {"caption": caption}


def _inline_markup(params: JSON) -> JSON | None:
    """Return the inline keyboard to store on the message; other keyboards aren't echoed."""
    markup = params.get("reply_markup")
    if not isinstance(markup, dict) or not markup.get("inline_keyboard"):
        return None
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise ApiError(400, "Bad Request: can't parse inline keyboard button")
    for button in itertools.chain.from_iterable(rows):
        _check_button(button)
    return copy.deepcopy(markup)


def _check_button(button: Any) -> None:
    if not isinstance(button, dict) or not button.get("text"):
        raise ApiError(400, "Bad Request: can't parse inline keyboard button: text is empty")
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES:
        raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")


def _require_button(message: JSON, callback_data: str) -> None:
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    offered = [button.get("callback_data") for row in rows for button in row]
    if callback_data not in offered:
        raise AssertionError(
            f"message {message.get('message_id')} has no button with callback_data "
            f"{callback_data!r}; buttons: {offered} (pass force=True to tap anyway)"
        )


def _check_bot_command(command: Any) -> None:
    if not isinstance(command, dict):
        raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
    if not _BOT_COMMAND_NAME_RE.fullmatch(str(command.get("command", ""))):
        raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
    if not 1 <= len(str(command.get("description", ""))) <= 256:
        raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")


def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
    scope = scope if isinstance(scope, dict) else {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(language_code or "")


def _without_edit_date(message: JSON) -> JSON:
    return {k: v for k, v in message.items() if k != "edit_date"}


def _describe(call: Call) -> str:
    params = json.dumps(call.params, ensure_ascii=False, default=str)
    if len(params) > 160:
        params = params[:157] + "..."
    files = f" files={sorted(call.files)}" if call.files else ""
    error = f" {call.error!r}" if call.error else ""
    return f"{call.method} -> {call.status}{error} {params}{files}"


# ----- HTML parse mode ------------------------------------------------------------------------


@dataclass
class _OpenTag:
    name: str
    offset: int
    entity: JSON
    emit: bool = True


def _html_error(text: str, position: int, problem: str) -> ApiError:
    byte_offset = len(text[:position].encode())
    return ApiError(
        400, f"Bad Request: can't parse entities: {problem} at byte offset {byte_offset}"
    )


def _tag_entity(name: str, attrs: dict[str, str]) -> JSON | None:
    """Return the entity (without offset/length) that a start tag opens, or None if unknown."""
    if name in _SIMPLE_TAGS:
        kind = _SIMPLE_TAGS[name]
        if kind == "blockquote" and "expandable" in attrs:
            kind = "expandable_blockquote"
        return {"type": kind}
    if name == "span" and attrs.get("class") == "tg-spoiler":
        return {"type": "spoiler"}
    if name == "a" and "href" in attrs:
        return {"type": "text_link", "url": attrs["href"]}
    if name == "tg-emoji" and "emoji-id" in attrs:
        return {"type": "custom_emoji", "custom_emoji_id": attrs["emoji-id"]}
    return None


def _tag_attrs(raw: str) -> dict[str, str]:
    attrs = {}
    for key, value in _ATTR_RE.findall(raw):
        attrs[key.lower()] = html.unescape(value[1:-1] if value[:1] in "\"'" else value)
    return attrs


def parse_html(text: str) -> tuple[str, list[JSON]]:
    """Turn Telegram-HTML into plain text and entities (UTF-16 offsets), like the Bot API."""
    out: list[str] = []
    length = 0
    stack: list[_OpenTag] = []
    entities: list[JSON] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char == "<":
            tag = _TAG_RE.match(text, position)
            if tag is None:
                raise _html_error(text, position, "unexpected end of name token")
            _handle_tag(text, tag, stack, entities, length)
            position = tag.end()
            continue
        entity = _HTML_ENTITY_RE.match(text, position) if char == "&" else None
        piece = html.unescape(entity.group()) if entity else char
        position = entity.end() if entity else position + 1
        out.append(piece)
        length += _utf16_len(piece)
    if stack:
        raise _html_error(
            text, len(text), f'can\'t find end tag corresponding to start tag "{stack[-1].name}"'
        )
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _handle_tag(
    text: str, tag: re.Match[str], stack: list[_OpenTag], entities: list[JSON], length: int
) -> None:
    name = tag.group(2).lower()
    if tag.group(1) != "/":
        stack.append(_open_tag(text, tag, name, stack, length))
        return
    if not stack or stack[-1].name != name:
        expected = f'"</{stack[-1].name}>"' if stack else "no end tag"
        raise _html_error(
            text, tag.start(), f'unmatched end tag, expected {expected}, found "</{name}>"'
        )
    opened = stack.pop()
    if opened.emit and length > opened.offset:
        entities.append(
            {**opened.entity, "offset": opened.offset, "length": length - opened.offset}
        )


def _open_tag(
    text: str, tag: re.Match[str], name: str, stack: list[_OpenTag], length: int
) -> _OpenTag:
    attrs = _tag_attrs(tag.group(3))
    entity = _tag_entity(name, attrs)
    if entity is None:
        raise _html_error(text, tag.start(), f'unsupported start tag "{name}"')
    if name == "code" and stack and stack[-1].name == "pre":
        # <pre><code class="language-x"> is one pre entity carrying the language.
        language = attrs.get("class", "").removeprefix("language-")
        if language:
            stack[-1].entity["language"] = language
        return _OpenTag(name, length, entity, emit=False)
    return _OpenTag(name, length, entity)


# ----- images ---------------------------------------------------------------------------------


def _fit(width: int, height: int, box: int) -> tuple[int, int]:
    scale = min(1.0, box / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _thumbnail(image: bytes, width: int, height: int) -> bytes:
    """Return a real JPEG thumbnail, or placeholder bytes when `image` isn't decodable."""
    try:
        with Image.open(io.BytesIO(image)) as opened:
            small = opened.convert("RGB").resize((width, height))
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG")
        return buffer.getvalue()
    except Exception:  # any undecodable input just gets placeholder bytes
        return f"thumbnail {width}x{height}".encode()


def _image_size(image: bytes) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(image)) as opened:
            return opened.size
    except Exception:  # undecodable uploads get a typical size
        return 1280, 720


def _suffix(filename: str, default: str) -> str:
    match = re.search(r"\.[A-Za-z0-9]{1,8}$", filename)
    return match.group().lower() if match else default


def _mime_type(upload: _Upload) -> str:
    if upload.content_type and upload.content_type != "application/octet-stream":
        return upload.content_type
    return mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
