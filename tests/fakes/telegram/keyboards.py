"""Inline keyboards: what the Bot API accepts in `reply_markup`, and what a user can tap."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from tests.fakes.telegram.errors import bad_request

JSON = dict[str, Any]

MAX_CALLBACK_DATA_BYTES = 64


def inline_markup(params: JSON) -> JSON | None:
    """Return the inline keyboard to store on the message; other keyboards aren't echoed."""
    markup = params.get("reply_markup")
    if not isinstance(markup, dict) or not markup.get("inline_keyboard"):
        return None
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request("can't parse inline keyboard button")
    for button in itertools.chain.from_iterable(rows):
        _check_button(button)
    return copy.deepcopy(markup)


def _check_button(button: Any) -> None:
    if not isinstance(button, dict) or not button.get("text"):
        raise bad_request("can't parse inline keyboard button: text is empty")
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES:
        raise bad_request("BUTTON_DATA_INVALID")


def require_button(message: JSON, callback_data: str) -> None:
    """Fail the test unless `message` has a button with this callback_data."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    offered = [button.get("callback_data") for row in rows for button in row]
    if callback_data not in offered:
        raise AssertionError(
            f"message {message.get('message_id')} has no button with callback_data "
            f"{callback_data!r}; buttons: {offered} (pass force=True to tap anyway)"
        )
