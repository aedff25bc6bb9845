"""Switch buttons name the value they set: a press handled twice sets it twice, never back."""

from __future__ import annotations

import pytest

from bot.chat.callback_data import Action, DraftButton
from bot.chat.handlers.drafts import apply_button
from bot.drafts.options import Option, apply_default
from storage.models import GenerationOptions, ImageUse
from tests.test_capabilities import CATALOGUE_OF_ALL, draft, first_draft

KLING_3 = CATALOGUE_OF_ALL.get("kie:kling-3.0/video")
V1_6 = CATALOGUE_OF_ALL.get("kling:kling-v1-6")


def press(
    options: GenerationOptions, action: Action, argument: str | None, count: int = 1
) -> GenerationOptions | None:
    """The options after one press of a draft button."""
    spec = CATALOGUE_OF_ALL.get(options.model)
    assert spec is not None
    pressed = DraftButton(7, action, argument)
    return apply_button(draft(options, count), spec, pressed, CATALOGUE_OF_ALL)


def test_a_switch_sets_what_it_names_however_often_it_is_pressed() -> None:
    assert KLING_3 is not None
    start = first_draft(KLING_3, 1)
    on = press(start, Action.SOUND, "1")
    assert on is not None and on.sound is True
    assert press(on, Action.SOUND, "1") == on  # again: still on
    off = press(on, Action.SOUND, "0")
    assert off is not None and off.sound is False
    four_k = press(start, Action.MODE, "4k")
    assert four_k is not None and four_k.mode == "4K"
    assert press(four_k, Action.MODE, "4k") == four_k
    lines = first_draft(KLING_3, 1, shots=2)  # a caption of two shot lines
    single = press(lines, Action.SHOTS, "0")
    assert single is not None and single.multi_shot is False
    assert press(single, Action.SHOTS, "0") == single
    shots = press(single, Action.SHOTS, "1")
    assert shots is not None and shots.multi_shot is True


def test_cfg_and_the_use_of_two_photos_are_set_by_value_too() -> None:
    assert V1_6 is not None
    start = first_draft(V1_6, 2)
    cfg = press(start, Action.CFG, "9", count=2)
    assert cfg is not None and cfg.cfg_scale == 0.9
    assert press(cfg, Action.CFG, "9", count=2) == cfg
    references = press(start, Action.IMAGES, "r", count=2)
    assert references is not None and references.images is ImageUse.REFERENCES
    assert press(references, Action.IMAGES, "r", count=2) == references


@pytest.mark.parametrize(
    ("action", "argument"),
    [
        (Action.SOUND, "2"),
        (Action.SOUND, "on"),
        (Action.MODE, "8k"),
        (Action.SHOTS, "yes"),
        (Action.CFG, "4"),
        (Action.IMAGES, "x"),
    ],
)
def test_a_forged_value_changes_nothing(action: Action, argument: str) -> None:
    assert KLING_3 is not None and V1_6 is not None
    spec = V1_6 if action in (Action.CFG, Action.IMAGES) else KLING_3
    assert press(first_draft(spec, 2), action, argument, count=2) is None


def test_buttons_sent_before_switches_named_a_value_still_switch() -> None:
    assert KLING_3 is not None and V1_6 is not None
    start = first_draft(KLING_3, 1)
    on = press(start, Action.SOUND, None)
    assert on is not None and on.sound is not start.sound
    mode = press(start, Action.MODE, None)
    assert mode is not None and mode.mode != start.mode
    cfg = press(first_draft(V1_6, 1), Action.CFG, None)
    assert cfg is not None and cfg.cfg_scale is not None


def test_settings_switches_set_their_value_and_refuse_forged_ones() -> None:
    assert KLING_3 is not None
    defaults = GenerationOptions(model=KLING_3.id, mode="pro")
    on = apply_default(defaults, Option.SOUND, "1", CATALOGUE_OF_ALL)
    assert on is not None and on.sound is True
    assert apply_default(on, Option.SOUND, "1", CATALOGUE_OF_ALL) == on
    std = apply_default(defaults, Option.MODE, "std", CATALOGUE_OF_ALL)
    assert std is not None and std.mode == "std"
    assert apply_default(defaults, Option.MODE, "8k", CATALOGUE_OF_ALL) is None
    assert apply_default(defaults, Option.SOUND, "2", CATALOGUE_OF_ALL) is None
