"""Caption conventions for the negative prompt and cfg_scale."""

from __future__ import annotations

import pytest

from bot.caption import Caption, parse_caption


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
