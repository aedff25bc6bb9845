"""Button `callback_data` (≤ 64 bytes): `d:<draft>:<action>[:<arg>]`, `t:<task>:<action>`,
`s:<action>[:<arg>]` (/settings) and `l:<page>` (/status)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from bot.drafts.options import Option


class Action(StrEnum):
    """What a draft button does."""

    DURATION = "dur"
    SOUND = "snd"
    MODEL_MENU = "mdl"
    MODEL = "m"
    BACK = "back"
    GENERATE = "go"
    CANCEL = "x"
    MODE = "mode"
    CFG = "cfg"
    IMAGES = "img"
    CAMERA_MENU = "cam"
    CAMERA = "c"
    TRIM = "trim"
    MODEL_GROUP = "grp"
    SHOTS = "shot"


_WITH_ARGUMENT = {Action.DURATION, Action.MODEL, Action.CAMERA, Action.MODEL_GROUP}
# Switches name the value they set; buttons sent before they did have none and still work.
_MAY_HAVE_ARGUMENT = {Action.SOUND, Action.MODE, Action.SHOTS, Action.CFG, Action.IMAGES}
# The draft buttons that change an option, and which.
DRAFT_OPTIONS = {
    Action.DURATION: Option.DURATION,
    Action.SOUND: Option.SOUND,
    Action.MODE: Option.MODE,
    Action.SHOTS: Option.SHOTS,
    Action.CFG: Option.CFG,
    Action.IMAGES: Option.IMAGES,
    Action.CAMERA: Option.CAMERA,
    Action.MODEL: Option.MODEL,
}
# ASCII digits without leading zeros: one button, one spelling.
_ID = r"([1-9][0-9]{0,17})"
_PATTERN = re.compile(rf"d:{_ID}:([a-z]{{1,4}})(?::([a-z0-9]{{1,16}}))?")


@dataclass(frozen=True)
class DraftButton:
    """A decoded draft button."""

    draft_id: int
    action: Action
    argument: str | None = None

    def encode(self) -> str:
        """The `callback_data` string."""
        tail = f":{self.argument}" if self.argument is not None else ""
        return f"d:{self.draft_id}:{self.action.value}{tail}"


class TaskAction(StrEnum):
    """What a button under a task's message does."""

    RETRY = "retry"
    AGAIN = "again"
    NEW = "new"
    REFRESH = "ref"


_TASK_PATTERN = re.compile(rf"t:{_ID}:([a-z]{{1,8}})")


@dataclass(frozen=True)
class TaskButton:
    """A decoded task button."""

    task_id: int
    action: TaskAction

    def encode(self) -> str:
        """The `callback_data` string."""
        return f"t:{self.task_id}:{self.action.value}"


def decode_task(data: str | None) -> TaskButton | None:
    """The task button `data` names, or None if it is not one of ours."""
    match = _TASK_PATTERN.fullmatch(data or "")
    if match is None:
        return None
    try:
        return TaskButton(int(match[1]), TaskAction(match[2]))
    except ValueError:
        return None


class SettingsAction(StrEnum):
    """What a /settings button does."""

    DURATION = "dur"
    SOUND = "snd"
    MODE = "mode"
    MODEL_MENU = "mdl"
    MODEL = "m"
    LANGUAGE = "lang"
    BACK = "back"
    MODEL_GROUP = "grp"


# The /settings buttons that change a default option, and which.
SETTINGS_OPTIONS = {
    SettingsAction.DURATION: Option.DURATION,
    SettingsAction.SOUND: Option.SOUND,
    SettingsAction.MODE: Option.MODE,
    SettingsAction.MODEL: Option.MODEL,
}
_SETTINGS_PATTERN = re.compile(r"s:([a-z]{1,4})(?::([a-z0-9]{1,16}))?")
_SETTINGS_WITH_ARGUMENT = {
    SettingsAction.DURATION,
    SettingsAction.MODEL,
    SettingsAction.LANGUAGE,
    SettingsAction.MODEL_GROUP,
}
_SETTINGS_MAY_HAVE_ARGUMENT = {SettingsAction.SOUND, SettingsAction.MODE}


@dataclass(frozen=True)
class SettingsButton:
    """A decoded /settings button."""

    action: SettingsAction
    argument: str | None = None

    def encode(self) -> str:
        """The `callback_data` string."""
        tail = f":{self.argument}" if self.argument is not None else ""
        return f"s:{self.action.value}{tail}"


def decode_settings(data: str | None) -> SettingsButton | None:
    """The settings button `data` names, or None."""
    match = _SETTINGS_PATTERN.fullmatch(data or "")
    if match is None:
        return None
    try:
        action = SettingsAction(match[1])
    except ValueError:
        return None
    if action not in _SETTINGS_MAY_HAVE_ARGUMENT and (
        (match[2] is not None) != (action in _SETTINGS_WITH_ARGUMENT)
    ):
        return None
    return SettingsButton(action, match[2])


_PAGE_PATTERN = re.compile(r"l:(0|[1-9][0-9]{0,5})")


def page_button(page: int) -> str:
    """The `callback_data` of a /status page."""
    return f"l:{page}"


def decode_page(data: str | None) -> int | None:
    """The /status page `data` names, or None."""
    match = _PAGE_PATTERN.fullmatch(data or "")
    return int(match[1]) if match else None


def decode(data: str | None) -> DraftButton | None:
    """The button `data` names, or None if it is not one of ours."""
    if not data:
        return None
    match = _PATTERN.fullmatch(data)
    if match is None:
        return None
    draft_id, action_text, argument = match.groups()
    try:
        action = Action(action_text)
    except ValueError:
        return None
    if action not in _MAY_HAVE_ARGUMENT and (argument is not None) != (action in _WITH_ARGUMENT):
        return None
    return DraftButton(int(draft_id), action, argument)
