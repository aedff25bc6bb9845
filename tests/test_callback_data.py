"""Encoding and decoding of draft buttons."""

from __future__ import annotations

import pytest

from bot.chat.callback_data import Action, DraftButton, TaskAction, TaskButton, decode, decode_task


@pytest.mark.parametrize(
    "button",
    [
        DraftButton(1, Action.GENERATE),
        DraftButton(123456789012345678, Action.MODEL, "o25t"),
        DraftButton(7, Action.DURATION, "10"),
        DraftButton(7, Action.CAMERA, "zi"),
        DraftButton(7, Action.CAMERA, "0"),
        DraftButton(7, Action.IMAGES),
        DraftButton(7, Action.CFG),
        DraftButton(7, Action.MODE),
        DraftButton(7, Action.SOUND, "1"),
        DraftButton(7, Action.MODE, "4k"),
        DraftButton(7, Action.CFG, "7"),
        DraftButton(7, Action.IMAGES, "e"),
        DraftButton(7, Action.SHOTS, "0"),
    ],
)
def test_round_trip_within_64_bytes(button: DraftButton) -> None:
    data = button.encode()
    assert len(data.encode()) <= 64
    assert decode(data) == button


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "hello",
        "d:1",
        "d:x:go",
        "d:1:zz",
        "d:1:go:extra",
        "d:1:snd:",
        "d:1:mode:4K",
        "d:1:dur",
        "d:1:m",
        "d:-1:go",
        "d:1:go\n",
        "d:1:c:ZI",
        "d:1:m:" + "a" * 40,
        "d:" + "9" * 30 + ":go",
    ],
)
def test_anything_else_is_refused(data: str | None) -> None:
    assert decode(data) is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("t:12:retry", TaskButton(12, TaskAction.RETRY)),
        ("t:012:retry", None),
        ("t:٣:retry", None),
        ("t:0:retry", None),
        ("t:12:nuke", None),
        ("d:12:go", None),
        (None, None),
    ],
)
def test_task_buttons(data: str | None, expected: TaskButton | None) -> None:
    assert decode_task(data) == expected
    if expected is not None:
        assert expected.encode() == data
