"""Caption conventions for the negative prompt and cfg_scale."""

from __future__ import annotations

import pytest

from bot.core.caption import Caption, parse_caption


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a cat blinks", Caption("a cat blinks")),
        ("a cat blinks\n--no blur, text", Caption("a cat blinks", "blur, text")),
        ("a cat blinks --no blur --cfg 0.7", Caption("a cat blinks", "blur", 0.7)),
        ("a cat blinks --cfg=0.3 --neg dogs", Caption("a cat blinks", "dogs", 0.3)),
        ("a cat\nnegative: blur\ncfg: 0.8", Caption("a cat", "blur", 0.8)),
        ("小猫眨眼\n反向：模糊，文字", Caption("小猫眨眼", "模糊，文字")),
        ("小猫眨眼\n负面提示词: 模糊", Caption("小猫眨眼", "模糊")),
        ("a cat --cfg 7", Caption("a cat", None, 1.0)),
        ("a cat --cfg lots", Caption("a cat", None, None)),
        ("don't--no spaces before", Caption("don't--no spaces before")),
        ("--no blur", Caption("", "blur")),
    ],
)
def test_parse_caption(text: str, expected: Caption) -> None:
    assert parse_caption(text) == expected


@pytest.mark.parametrize(
    ("text", "shots"),
    [
        ("1. a cat wakes\n2. it yawns\n3. it leaves", ("a cat wakes", "it yawns", "it leaves")),
        ("1) dawn\n2) noon", ("dawn", "noon")),
        ("1、猫醒来\n2、打哈欠 --no 模糊", ("猫醒来", "打哈欠")),
        (
            "wide shot of the sea\nclose-up of a gull --shots",
            ("wide shot of the sea", "close-up of a gull"),
        ),
        ("1. only one numbered line", ()),
        ("1. a\n3. b", ()),  # not numbered 1, 2, …
        ("a description\n1. a\n2. b", ()),  # not all lines are shots
        ("one line --shots", ()),
    ],
)
def test_shots_are_numbered_lines_or_every_line_with_the_flag(
    text: str, shots: tuple[str, ...]
) -> None:
    caption = parse_caption(text)
    assert caption.shots == shots
    assert "--shots" not in caption.prompt
