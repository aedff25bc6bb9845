"""What Telegram makes of text: parse modes, entities (UTF-16 offsets), length limits."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from tests.fakes.telegram.errors import ApiError, bad_request

JSON = dict[str, Any]

MAX_TEXT = 4096
MAX_CAPTION = 1024
PARSE_MODES = frozenset({"html", "markdown", "markdownv2"})

_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
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


def utf16_len(text: str) -> int:
    """Return the length of `text` in UTF-16 code units, as entity offsets count."""
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[JSON]:
    """Return the bot_command entity of a leading /command, as a client adds it."""
    match = _COMMAND_RE.match(text)
    if match is None:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group())}]


def user_caption(caption: str | None) -> JSON:
    """Return the caption fields of a user's media message."""
    if caption is None:
        return {}
    fields: JSON = {"caption": caption}
    entities = command_entities(caption)
    if entities:
        fields["caption_entities"] = entities
    return fields


def _formatted(text: str, params: JSON, entities_field: str) -> tuple[str, list[JSON] | None]:
    """Apply parse_mode, else explicit entities, the way Telegram stores the result.

    As in Telegram's server (``Client::get_formatted_text``), the mode is matched in any case,
    "" and "none" mean none, an empty text is never parsed, and a mode wins over entities.
    Markdown and MarkdownV2 are accepted but not modelled: their text is stored as sent.
    """
    mode = str(params.get("parse_mode") or "").lower()
    if text and mode and mode != "none":
        if mode not in PARSE_MODES:
            raise bad_request("unsupported parse_mode")
        if mode == "html":
            plain, entities = parse_html(text)
            return plain, entities or None
        return text, None
    explicit = params.get(entities_field)
    if isinstance(explicit, list):
        return text, explicit or None
    return text, None


def message_text(params: JSON) -> tuple[str, list[JSON] | None]:
    """Return a message's stored text and entities; empty or too long is a 400."""
    raw = params.get("text")
    text, entities = _formatted("" if raw is None else str(raw), params, "entities")
    if not text.strip():
        raise bad_request("message text is empty")
    if len(text) > MAX_TEXT:
        raise bad_request("message is too long")
    return text, entities


def caption_fields(params: JSON) -> JSON:
    """Return a media message's stored caption fields; too long is a 400."""
    raw = params.get("caption")
    if raw is None:
        return {}
    caption, entities = _formatted(str(raw), params, "caption_entities")
    if len(caption) > MAX_CAPTION:
        raise bad_request("message caption is too long")
    if not caption:
        return {}
    return {"caption": caption, "caption_entities": entities} if entities else {"caption": caption}


# ----- HTML parse mode ------------------------------------------------------------------------


@dataclass
class _OpenTag:
    name: str
    offset: int
    entity: JSON
    emit: bool = True


def _html_error(text: str, position: int, problem: str) -> ApiError:
    byte_offset = len(text[:position].encode())
    return bad_request(f"can't parse entities: {problem} at byte offset {byte_offset}")


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
        length += utf16_len(piece)
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
