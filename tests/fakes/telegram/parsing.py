"""Request parsing: JSON, form and multipart bodies into params and uploads; parameter types."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request

from tests.fakes.telegram.errors import TOO_LARGE, ApiError, bad_request

JSON = dict[str, Any]

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
# A request may carry one file of the largest size plus its other fields; past that the
# body is read and dropped, not kept, so a runaway upload takes neither memory nor disk.
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + 1024 * 1024
# Form fields are text: a message is at most 4096 characters, reply_markup a few kB.
MAX_FIELD_BYTES = 1024 * 1024

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


@dataclass
class Upload:
    """A file sent in a multipart request."""

    filename: str
    content_type: str
    content: bytes


async def read_params(request: Request) -> tuple[JSON, dict[str, Upload]]:
    """Return a request's parameters (query string and body) and its uploaded files."""
    raw: JSON = dict(request.query_params)
    uploads: dict[str, Upload] = {}
    mime = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if mime == "application/json":
        raw.update(await _read_json(request))
    else:
        fields, uploads = await _read_form(request, multipart=mime == "multipart/form-data")
        raw.update(fields)
    params = {k: _decode_value(k, v) if isinstance(v, str) else v for k, v in raw.items()}
    return params, uploads


async def _read_json(request: Request) -> JSON:
    body = bytearray()
    async for chunk in _capped(request.stream(), MAX_REQUEST_BYTES):
        body += chunk
    if not body:
        return {}
    try:
        loaded = json.loads(body)
    except ValueError as err:
        raise bad_request("can't parse JSON object") from err
    if not isinstance(loaded, dict):
        raise bad_request("can't parse JSON object")
    return loaded


async def _read_form(request: Request, *, multipart: bool) -> tuple[JSON, dict[str, Upload]]:
    """Parse a form body with python-multipart, as Starlette's ``request.form()`` does.

    File parts are spooled to a temporary file past 1 MB and read once, after their size is
    checked: a 50 MB video is held in memory once (the call records its bytes), not copied.
    """
    stream = _capped(request.stream(), MAX_REQUEST_BYTES)
    parser: MultiPartParser | FormParser
    if multipart:
        parser = MultiPartParser(
            request.headers, stream, max_files=10, max_fields=100, max_part_size=MAX_FIELD_BYTES
        )
    else:
        parser = FormParser(request.headers, stream, max_fields=100, max_part_size=MAX_FIELD_BYTES)
    try:
        form = await parser.parse()
    except MultiPartException as err:
        raise bad_request(f"can't parse request body: {err.message}") from err
    fields: JSON = {}
    uploads: dict[str, Upload] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, str):
                fields[name] = value
            elif value.size is not None and value.size > MAX_UPLOAD_BYTES:
                raise ApiError(413, TOO_LARGE)
            else:
                content_type = value.content_type or "application/octet-stream"
                uploads[name] = Upload(value.filename or name, content_type, await value.read())
    finally:
        await form.close()
    return fields, uploads


async def _capped(chunks: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    """Yield the body's chunks; past `limit` bytes, drain the rest and answer 413."""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            # Read to the end so that the client gets the 413, not a connection reset.
            async for _ in chunks:
                pass
            raise ApiError(413, TOO_LARGE)
        yield chunk


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


# ----- parameter types ------------------------------------------------------------------------


def number_param(params: JSON, name: str, default: float) -> float:
    """Return a numeric parameter; a non-number is a 400."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"wrong parameter {name} in request")
    return float(value)


def int_param(params: JSON, name: str, default: int) -> int:
    """Return an integer parameter (a fraction is cut); a non-number is a 400."""
    return int(number_param(params, name, default))


def chat_id_param(params: JSON) -> int:
    """Return `chat_id`; the fake knows numeric chats only."""
    value = params.get("chat_id")
    if value is None or value == "":
        raise bad_request("chat_id is empty")
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request("chat not found")
    return value


def flag(value: Any) -> bool:
    """Read a Boolean parameter as Telegram does: true, "true", "yes" and 1 are true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value == 1
    return isinstance(value, str) and value.strip().lower() in ("true", "yes", "1")


@dataclass(frozen=True)
class ReplyTarget:
    """The message a send replies to, and whether it may go out without it."""

    chat_id: int | None
    message_id: int
    allow_sending_without_reply: bool


def reply_target(params: JSON) -> ReplyTarget | None:
    """Return what `reply_parameters` (or the older `reply_to_message_id`) asks for.

    As Telegram's server reads it (``Client::get_reply_parameters``): without
    reply_parameters, the top-level fields; an empty object or a message_id under 1 is no reply.
    """
    if "reply_parameters" not in params:
        message_id = params.get("reply_to_message_id")
        if isinstance(message_id, bool) or not isinstance(message_id, int) or message_id < 1:
            return None
        return ReplyTarget(None, message_id, flag(params.get("allow_sending_without_reply")))
    value = params["reply_parameters"]
    if value in ("", None):
        return None
    if isinstance(value, str):
        raise bad_request("can't parse reply parameters JSON object")
    if not isinstance(value, dict):
        raise bad_request("object expected as reply parameters")
    if not value:
        return None
    if "message_id" not in value:
        raise bad_request('can\'t find field "message_id"')
    message_id = value["message_id"]
    if isinstance(message_id, bool) or not isinstance(message_id, int):
        raise bad_request('field "message_id" must be of type Number')
    if message_id < 1:
        return None
    chat_id = value.get("chat_id")
    chat = chat_id if isinstance(chat_id, int) and not isinstance(chat_id, bool) else None
    return ReplyTarget(chat, message_id, flag(value.get("allow_sending_without_reply")))
