"""Request parsing: JSON, form and multipart bodies into params and uploads; parameter types."""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from tests.fakes.telegram.errors import bad_request

JSON = dict[str, Any]

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
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    mime = content_type.split(";", 1)[0].strip().lower()
    if body and mime == "application/json":
        try:
            loaded = json.loads(body)
        except ValueError as err:
            raise bad_request("can't parse JSON object") from err
        if not isinstance(loaded, dict):
            raise bad_request("can't parse JSON object")
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


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, Upload]]:
    """Split a multipart/form-data body into text fields and file uploads."""
    boundary = _header_param(content_type, "boundary")
    if not boundary:
        raise bad_request("multipart boundary is missing")
    fields: dict[str, str] = {}
    uploads: dict[str, Upload] = {}
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
            uploads[name] = Upload(filename, content_type, content)
    return fields, uploads


def _part_headers(head: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    return headers


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
