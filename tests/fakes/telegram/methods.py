"""The Bot API methods the fake serves: one handler per method, over a TelegramState."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from tests.fakes.telegram.errors import ApiError, bad_request
from tests.fakes.telegram.formatting import caption_fields, message_text
from tests.fakes.telegram.keyboards import inline_markup
from tests.fakes.telegram.media import image_size, mime_type, suffix
from tests.fakes.telegram.parsing import (
    JSON,
    Upload,
    chat_id_param,
    flag,
    int_param,
    number_param,
    reply_target,
)
from tests.fakes.telegram.state import MessageKey, StoredFile, TelegramState

MAX_ANSWER_TEXT = 200
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
_BOT_COMMAND_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")
# The ports Telegram delivers webhooks to.
WEBHOOK_PORTS = frozenset({80, 88, 443, 8443})
# An empty secret_token is no secret_token: Telegram then sends no secret header.
_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]*")
_BAD_WEBHOOK = "bad webhook: "
# A long poll that a newer one (or setWebhook) replaces ends with 409 and one of these
# (telegram-bot-api, Client::abort_long_poll).
TERMINATED_BY_GET_UPDATES = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
TERMINATED_BY_SET_WEBHOOK = "Conflict: terminated by setWebhook request"
# Telegram answers at most one such 409 per this many seconds; a later one waits this long
# (Client::fail_query_conflict).
CONFLICT_PAUSE = 3.0
POLL_PAUSE_STEP = 0.05
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


@dataclass
class MethodCall:
    """One call of a Bot API method: its parameters, uploaded files and HTTP request."""

    params: JSON
    uploads: dict[str, Upload]
    request: Request


Handler = Callable[[MethodCall], Any | Awaitable[Any]]


class _LongPoll:
    """One pending getUpdates long poll."""

    def __init__(self, request: Request, deadline: float) -> None:
        self.request = request
        self.deadline = deadline
        self.keep_alive_at_start = _keep_alive(request)
        # Why a newer request ended this one (a 409's description), if one did.
        self.terminated: str | None = None

    async def gone(self) -> bool:
        """Whether the client hung up or the server began shutting down."""
        if await self.request.is_disconnected():
            return True
        # uvicorn's graceful shutdown only flips keep_alive on in-flight requests; without this
        # a pending long poll would hold the server open until its timeout.
        return self.keep_alive_at_start and not _keep_alive(self.request)


def _keep_alive(request: Request) -> bool:
    cycle = getattr(request.receive, "__self__", None)
    return bool(getattr(cycle, "keep_alive", True))


class BotMethods:
    """The Bot API methods, each a handler that reads and changes one TelegramState."""

    def __init__(self, state: TelegramState) -> None:
        self.state = state
        # The one long poll Telegram keeps per bot, waiting for updates; and when the next
        # 409 for a replaced one may be sent at once.
        self._long_poll: _LongPoll | None = None
        self._next_conflict_at = 0.0
        self.handlers: dict[str, Handler] = {
            "getMe": self.get_me,
            "getUpdates": self.get_updates,
            "deleteWebhook": self.delete_webhook,
            "setWebhook": self.set_webhook,
            "getWebhookInfo": self.get_webhook_info,
            "setMyCommands": self.set_my_commands,
            "deleteMyCommands": self.delete_my_commands,
            "getMyCommands": self.get_my_commands,
            "sendMessage": self.send_message,
            "editMessageText": self.edit_message_text,
            "editMessageCaption": self.edit_message_caption,
            "editMessageReplyMarkup": self.edit_message_reply_markup,
            "deleteMessage": self.delete_message,
            "answerCallbackQuery": self.answer_callback_query,
            "getFile": self.get_file,
            "sendVideo": self.send_video,
            "sendDocument": self.send_document,
            "sendPhoto": self.send_photo,
            "sendChatAction": self.send_chat_action,
            "close": self.close,
            "logOut": self.log_out,
        }
        self._canonical = {name.lower(): name for name in self.handlers}

    def canonical(self, name: str) -> str:
        """Return a method's name as the Bot API spells it (names match in any case)."""
        return self._canonical.get(name.lower(), name)

    # ----- the bot itself ---------------------------------------------------------------------

    def get_me(self, call: MethodCall) -> JSON:
        """getMe: the bot's User with its capabilities."""
        return {
            **self.state.bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def close(self, call: MethodCall) -> bool:
        """close: nothing to close in a fake."""
        return True

    def log_out(self, call: MethodCall) -> bool:
        """logOut: nothing to log out of in a fake."""
        return True

    # ----- updates ----------------------------------------------------------------------------

    async def get_updates(self, call: MethodCall) -> list[JSON]:
        """getUpdates: confirm by offset, then long-poll up to `timeout` for new updates."""
        state = self.state
        if state.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        params = call.params
        limit = min(max(int_param(params, "limit", 100), 1), 100)
        # Telegram wants whole seconds; fractions are allowed here to keep tests fast.
        timeout = max(number_param(params, "timeout", 0), 0.0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            state.allow_updates([str(kind) for kind in allowed])
        state.confirm_updates(int_param(params, "offset", 0))
        poll = _LongPoll(call.request, time.monotonic() + timeout)
        ready = state.deliverable_updates()[:limit]
        if ready or state.closed or timeout <= 0:
            # Answered at once: a long poll that waits meanwhile goes on waiting.
            return ready
        # One waiting long poll per bot: this one replaces any other, which ends with a 409.
        self._terminate_long_poll(TERMINATED_BY_GET_UPDATES)
        self._long_poll = poll
        try:
            while True:
                ready = state.deliverable_updates()[:limit]
                if ready or state.closed or time.monotonic() >= poll.deadline:
                    return ready
                await state.wait_for_update(poll.deadline)
                if poll.terminated is not None:
                    await self._conflict_pause(poll)
                    raise ApiError(409, poll.terminated)
                if await poll.gone():
                    return []
        finally:
            if self._long_poll is poll:
                self._long_poll = None

    def _terminate_long_poll(self, reason: str) -> None:
        """End the waiting long poll, if any, with a 409 that says `reason`."""
        if self._long_poll is not None:
            self._long_poll.terminated = reason
            self._long_poll = None
            self.state.wake_pollers()

    async def _conflict_pause(self, poll: _LongPoll) -> None:
        """Wait as Telegram does before a 409: not at all, unless one went out in the last
        CONFLICT_PAUSE seconds (then that long)."""
        now = time.monotonic()
        if now >= self._next_conflict_at:
            self._next_conflict_at = now + CONFLICT_PAUSE
            return
        for _ in range(math.ceil(CONFLICT_PAUSE / POLL_PAUSE_STEP)):
            if self.state.closed or await poll.gone():
                return
            await asyncio.sleep(POLL_PAUSE_STEP)

    def delete_webhook(self, call: MethodCall) -> bool:
        """deleteWebhook: back to getUpdates."""
        self.state.webhook_url = ""
        if flag(call.params.get("drop_pending_updates")):
            self.state.drop_updates()
        return True

    def set_webhook(self, call: MethodCall) -> bool:
        """setWebhook: check and remember the URL and secret (the fake never calls it: tests post
        updates themselves, or hand them to a deliverer, see `webhook_updates`).

        As in Telegram's server, the old webhook is gone and pending updates are dropped (when
        asked) before the new URL is checked, so a refused one leaves no webhook behind.
        """
        self.state.webhook_url = ""
        if flag(call.params.get("drop_pending_updates")):
            self.state.drop_updates()
        url = str(call.params.get("url") or "")
        if url:
            self._terminate_long_poll(TERMINATED_BY_SET_WEBHOOK)
            _check_webhook_url(url, loopback_http=self.state.allow_loopback_http_webhook)
            _check_secret_token(str(call.params.get("secret_token") or ""))
        self.state.webhook_url = url
        self.state.webhook_secret_token = str(call.params.get("secret_token") or "")
        allowed = call.params.get("allowed_updates")
        if url and isinstance(allowed, list):
            self.state.allow_updates([str(kind) for kind in allowed])
        return True

    def get_webhook_info(self, call: MethodCall) -> JSON:
        """getWebhookInfo: the URL and the number of pending updates."""
        info: JSON = {
            "url": self.state.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self.state.pending_updates),
        }
        if self.state.webhook_last_error is not None:
            info["last_error_date"], info["last_error_message"] = self.state.webhook_last_error
        return info

    # ----- commands ---------------------------------------------------------------------------

    def set_my_commands(self, call: MethodCall) -> bool:
        """setMyCommands: the command list of a scope and language."""
        commands = call.params.get("commands")
        if not isinstance(commands, list):
            raise bad_request('parameter "commands" is required')
        for command in commands:
            _check_bot_command(command)
        scope, language = call.params.get("scope"), call.params.get("language_code", "")
        self.state.set_my_commands(scope, language, commands)
        return True

    def delete_my_commands(self, call: MethodCall) -> bool:
        """deleteMyCommands: forget a scope and language's command list."""
        scope, language = call.params.get("scope"), call.params.get("language_code", "")
        self.state.delete_my_commands(scope, language)
        return True

    def get_my_commands(self, call: MethodCall) -> list[JSON]:
        """getMyCommands: a scope and language's command list."""
        language = str(call.params.get("language_code", "") or "")
        return self.state.my_commands(language, call.params.get("scope"))

    # ----- sending ----------------------------------------------------------------------------

    def send_message(self, call: MethodCall) -> JSON:
        """sendMessage: a text message."""
        chat_id = chat_id_param(call.params)
        text, entities = message_text(call.params)
        content: JSON = {"text": text}
        if entities:
            content["entities"] = entities
        return self._send(chat_id, call.params, content)

    def send_video(self, call: MethodCall) -> JSON:
        """sendVideo: an uploaded, re-sent (file_id) or downloaded (URL) video."""
        chat_id = chat_id_param(call.params)
        caption = caption_fields(call.params)
        stored, upload = self._input_file(call, "video", "videos", ".mp4")
        video: JSON = {
            **stored.ref(),
            "width": int_param(call.params, "width", 1280),
            "height": int_param(call.params, "height", 720),
            "duration": int_param(call.params, "duration", 5),
            "mime_type": "video/mp4",
        }
        if upload is not None:
            video["file_name"] = upload.filename
        return self._send(chat_id, call.params, {"video": video, **caption})

    def send_document(self, call: MethodCall) -> JSON:
        """sendDocument: a file as a document."""
        chat_id = chat_id_param(call.params)
        caption = caption_fields(call.params)
        stored, upload = self._input_file(call, "document", "documents", ".bin")
        document: JSON = stored.ref()
        if upload is not None:
            document["file_name"] = upload.filename
            document["mime_type"] = mime_type(upload)
        return self._send(chat_id, call.params, {"document": document, **caption})

    def send_photo(self, call: MethodCall) -> JSON:
        """sendPhoto: a photo, stored in three sizes as Telegram does."""
        chat_id = chat_id_param(call.params)
        caption = caption_fields(call.params)
        stored, _ = self._input_file(call, "photo", "photos", ".jpg")
        width, height = image_size(stored.content)
        photo = self.state.photo_sizes(stored.content, width, height)
        return self._send(chat_id, call.params, {"photo": photo, **caption})

    def send_chat_action(self, call: MethodCall) -> bool:
        """sendChatAction: one of the known actions."""
        chat_id_param(call.params)
        if call.params.get("action") not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    def _send(self, chat_id: int, params: JSON, content: JSON) -> JSON:
        reply_to = self._reply_to(chat_id, params)
        markup = inline_markup(params)
        return self.state.bot_message(chat_id, content, reply_to, markup)

    def _reply_to(self, chat_id: int, params: JSON) -> JSON | None:
        """Return the message a send replies to; a missing one is a 400 unless allowed."""
        target = reply_target(params)
        if target is None:
            return None
        chat = chat_id if target.chat_id is None else target.chat_id
        message = self.state.known_message((chat, target.message_id))
        if message is not None:
            return message
        if target.allow_sending_without_reply:
            return None
        raise bad_request("message to be replied not found")

    def _input_file(
        self, call: MethodCall, name: str, folder: str, default_suffix: str
    ) -> tuple[StoredFile, Upload | None]:
        value = call.params.get(name)
        upload = call.uploads.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            upload = call.uploads.get(value.removeprefix("attach://"))
        if upload is not None:
            file_suffix = suffix(upload.filename, default_suffix)
            return self.state.store(upload.content, folder, file_suffix), upload
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            downloaded = f"downloaded from {value}".encode()
            return self.state.store(downloaded, folder, default_suffix), None
        stored = self.state.file(value) if isinstance(value, str) else None
        if stored is not None:
            return stored, None
        if value:
            raise bad_request("wrong file identifier/HTTP URL specified")
        raise bad_request(f"there is no {name} in the request")

    # ----- editing and deleting ---------------------------------------------------------------

    def edit_message_text(self, call: MethodCall) -> JSON:
        """editMessageText: new text (and keyboard) for a bot's text message."""
        key, old = self._editable(call.params)
        if "text" not in old:
            raise bad_request("there is no text in the message to edit")
        text, entities = message_text(call.params)
        changes = {"text": text, "entities": entities, "reply_markup": inline_markup(call.params)}
        return self._apply_edit(key, old, changes)

    def edit_message_caption(self, call: MethodCall) -> JSON:
        """editMessageCaption: a new caption (and keyboard) for a bot's media message."""
        key, old = self._editable(call.params)
        if "text" in old:
            raise bad_request("there is no caption in the message to edit")
        changes: JSON = {"caption": None, "caption_entities": None}
        changes.update(caption_fields(call.params))
        changes["reply_markup"] = inline_markup(call.params)
        return self._apply_edit(key, old, changes)

    def edit_message_reply_markup(self, call: MethodCall) -> JSON:
        """editMessageReplyMarkup: a new inline keyboard, or none."""
        key, old = self._editable(call.params)
        return self._apply_edit(key, old, {"reply_markup": inline_markup(call.params)})

    def delete_message(self, call: MethodCall) -> bool:
        """deleteMessage: any message the chat still has."""
        chat_id, message_id = chat_id_param(call.params), call.params.get("message_id")
        if not isinstance(message_id, int) or not self.state.delete_message((chat_id, message_id)):
            raise bad_request("message to delete not found")
        return True

    def _editable(self, params: JSON) -> tuple[MessageKey, JSON]:
        if "inline_message_id" in params:
            raise bad_request("MESSAGE_ID_INVALID")
        chat_id, message_id = chat_id_param(params), params.get("message_id")
        if not isinstance(message_id, int):
            raise bad_request("message to edit not found")
        key = (chat_id, message_id)
        message = self.state.messages.get(key)
        if message is None:
            if self.state.known_message(key) is not None:
                raise bad_request("message can't be edited")
            raise bad_request("message to edit not found")
        return key, message

    def _apply_edit(self, key: MessageKey, old: JSON, changes: JSON) -> JSON:
        new = dict(old)
        for name, value in changes.items():
            if value is None:
                new.pop(name, None)
            else:
                new[name] = value
        if _without_edit_date(new) == _without_edit_date(old):
            raise bad_request(NOT_MODIFIED)
        new["edit_date"] = int(time.time())
        return self.state.replace_message(key, new)

    # ----- callback queries and files ---------------------------------------------------------

    def answer_callback_query(self, call: MethodCall) -> bool:
        """answerCallbackQuery: once per query, with at most 200 characters of text."""
        query_id = str(call.params.get("callback_query_id", ""))
        if not self.state.query_open(query_id):
            raise bad_request(QUERY_TOO_OLD)
        text = call.params.get("text")
        if text is not None and len(str(text)) > MAX_ANSWER_TEXT:
            raise bad_request("MESSAGE_TOO_LONG")
        self.state.answer_query(query_id, call.params)
        return True

    def get_file(self, call: MethodCall) -> JSON:
        """getFile: a stored file's path, for files up to 20 MB."""
        stored = self.state.file(str(call.params.get("file_id", "")))
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.content) > MAX_DOWNLOAD_BYTES:
            raise bad_request("file is too big")
        return stored.info()


def _check_bot_command(command: Any) -> None:
    if not isinstance(command, dict):
        raise bad_request("BOT_COMMAND_INVALID")
    if not _BOT_COMMAND_NAME_RE.fullmatch(str(command.get("command", ""))):
        raise bad_request("BOT_COMMAND_INVALID")
    if not 1 <= len(str(command.get("description", ""))) <= 256:
        raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")


def _without_edit_date(message: JSON) -> JSON:
    return {k: v for k, v in message.items() if k != "edit_date"}


def _check_webhook_url(url: str, *, loopback_http: bool) -> None:
    """Refuse a webhook URL as Telegram does (``WebhookActor::start_up`` and its IP check).

    With `loopback_http`, an http or https URL on this machine's loopback, on any port, is
    taken: Telegram refuses both, but a test's bot listens on plain loopback HTTP.
    """
    parts = urllib.parse.urlsplit(url if "://" in url else f"https://{url}")
    try:
        port = parts.port
    except ValueError:
        raise bad_request("invalid webhook URL specified") from None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise bad_request("invalid webhook URL specified")
    address = _host_address(host)
    if loopback_http and address is not None and address.is_loopback:
        return
    if parts.scheme == "http":
        raise bad_request(f"{_BAD_WEBHOOK}An HTTPS URL must be provided for webhook")
    if (port or 443) not in WEBHOOK_PORTS:
        raise bad_request(f"{_BAD_WEBHOOK}Webhook can be set up only on ports 80, 88, 443 or 8443")
    if isinstance(address, ipaddress.IPv6Address):
        raise bad_request(f"{_BAD_WEBHOOK}IPv6-only addresses are not allowed")
    if address is not None and not address.is_global:
        raise bad_request(f"{_BAD_WEBHOOK}IP address {address} is reserved")


def _host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Return the address a host names when the fake knows it without DNS (else None)."""
    if host == "localhost":
        return ipaddress.IPv4Address("127.0.0.1")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _check_secret_token(token: str) -> None:
    """Refuse a secret_token Telegram refuses: over 256 characters, or outside A-Za-z0-9_-."""
    if len(token) > 256:
        raise bad_request("secret token is too long")
    if not _SECRET_TOKEN_RE.fullmatch(token):
        raise bad_request("secret token contains unallowed characters")
