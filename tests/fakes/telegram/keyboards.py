"""Inline keyboards: what the Bot API accepts in `reply_markup`, and what a user can tap."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from tests.fakes.telegram.errors import bad_request

JSON = dict[str, Any]

MAX_CALLBACK_DATA_BYTES = 64
# What an InlineKeyboardButton can do, in the order Telegram's server looks for them
# (``Client::get_inline_keyboard_button_type`` in tdlib/telegram-bot-api).
BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "callback_game",
    "pay",
    "switch_inline_query",
    "switch_inline_query_chosen_chat",
    "switch_inline_query_current_chat",
    "login_url",
    "web_app",
    "copy_text",
)
_CANT_PARSE = "can't parse inline keyboard button: "


def inline_markup(params: JSON) -> JSON | None:
    """Return the inline keyboard to store on the message; other keyboards aren't echoed."""
    markup = params.get("reply_markup")
    if not isinstance(markup, dict) or not markup.get("inline_keyboard"):
        return None
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(
            'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
        )
    for button in itertools.chain.from_iterable(rows):
        problem = _button_problem(button)
        if problem is not None:
            raise bad_request(problem)
    return copy.deepcopy(markup)


def _button_problem(button: Any) -> str | None:
    """Say why Telegram refuses an InlineKeyboardButton, or None if it takes it."""
    if not isinstance(button, dict):
        return f"{_CANT_PARSE}InlineKeyboardButton must be an Object"
    text = button.get("text")
    if text is None:
        return f'{_CANT_PARSE}Can\'t find field "text"'
    if not isinstance(text, str):
        return f'{_CANT_PARSE}Field "text" must be of type String'
    if not text:
        # Not seen from the Bot API; MTProto's documented error for an invalid button text.
        return "BUTTON_TEXT_INVALID"
    actions = [name for name in BUTTON_ACTIONS if _has_action(button, name)]
    if not actions:
        return f"{_CANT_PARSE}Text buttons are unallowed in the inline keyboard"
    if len(actions) > 1:
        # Telegram's server takes the first action in its own order and ignores the rest;
        # the Bot API documents "exactly one", so the fake refuses, in its own words.
        found = ", ".join(actions)
        return f"{_CANT_PARSE}exactly one of the optional fields must be used (found {found})"
    data = button.get("callback_data")
    if data is not None and len(str(data).encode()) > MAX_CALLBACK_DATA_BYTES:
        return "BUTTON_DATA_INVALID"
    return None


def _has_action(button: JSON, name: str) -> bool:
    # Telegram's server takes an empty url or callback_data for none at all.
    if name in ("url", "callback_data"):
        return button.get(name) not in (None, "")
    return name in button


def require_button(message: JSON, callback_data: str) -> None:
    """Fail the test unless `message` has a button with this callback_data."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    offered = [button.get("callback_data") for row in rows for button in row]
    if callback_data not in offered:
        raise AssertionError(
            f"message {message.get('message_id')} has no button with callback_data "
            f"{callback_data!r}; buttons: {offered} (pass force=True to tap anyway)"
        )
