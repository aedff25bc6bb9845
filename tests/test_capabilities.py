"""The capability map: every keyboard state a user can reach makes a create the API accepts.

The walk presses every option button the real keyboards show (draft and camera menu), for
every model and for one photo and an album of two, and sends each reachable state's request
through the real wire code to the fakes' validators, which carry their own copy of the
providers' rules (providers.md, sections A and D).
"""

from __future__ import annotations

import io
from collections import deque
from typing import Any

import pytest
from PIL import Image

from bot.chat.callback_data import Action, decode
from bot.chat.handlers.drafts import apply_button
from bot.chat.views.camera import camera_menu
from bot.chat.views.draft import draft_keyboard
from bot.core.caption import Caption
from bot.drafts.options import fit_options, image_uses, with_caption
from bot.engine.submit import build_request
from bot.providers.base import ImageFile
from bot.providers.catalogue import ModelSpec, request_refusal
from bot.providers.kie import build_input
from bot.providers.kling_auth import BearerAuth
from bot.providers.kling_wire import OFFICIAL, OfficialShapeProvider
from bot.providers.registry import BACKENDS, CATALOGUE, catalogue_of
from bot.providers.tuzi import TUZI
from storage.models import (
    AlbumImage,
    Draft,
    DraftState,
    GenerationOptions,
    Task,
)
from tests.conftest import task_row
from tests.fakes import kie as kie_fake
from tests.fakes import kling as kling_fake
from tests.fakes.kie import FakeKie


def jpeg_file(color: str) -> ImageFile:
    out = io.BytesIO()
    Image.new("RGB", (640, 360), color).save(out, "JPEG")
    return ImageFile(
        data=out.getvalue(), mime_type="image/jpeg", file_name="a.jpg", width=640, height=360
    )


IMAGES = [jpeg_file("red"), jpeg_file("blue")]
WALKED = [spec for spec in CATALOGUE if spec.backend in ("kie", "kling", "tuzi")]
CATALOGUE_OF_ALL = catalogue_of([b.name for b in BACKENDS])


KIE = FakeKie()
for _name in ("a", "b"):  # as if uploaded to kie's file host
    KIE.uploads[f"kling-bot/{_name}.jpg"] = IMAGES[0].data
    KIE._url_files[f"https://f/{_name}.jpg"] = f"kling-bot/{_name}.jpg"
# Only their body builders are used: no request is sent, so their clients stay unused.
WIRES = {
    name: OfficialShapeProvider(name, "https://k", BearerAuth("k"), flavour)
    for name, flavour in (("kling", OFFICIAL), ("tuzi", TUZI))
}


def draft(options: GenerationOptions, count: int) -> Draft:
    extra = [AlbumImage(message_id=10 + n, file_id=f"f{n}") for n in range(count - 1)]
    return Draft(
        id=7,
        user_id=1,
        chat_id=1,
        source_message_id=1,
        message_id=2,
        image_file_id="f0",
        extra_images=extra,
        prompt="the tide comes in",
        options=options,
        lang="en",
        state=DraftState.OPEN,
        created_at=0.0,
        updated_at=0.0,
    )


def task_of(options: GenerationOptions, count: int) -> Task:
    extra = [AlbumImage(message_id=10 + n, file_id=f"f{n}") for n in range(count - 1)]
    return task_row(options, extra_images=extra)


def first_draft(spec: ModelSpec, count: int, shots: int = 0) -> GenerationOptions:
    """The options of a new draft, made as the handlers make them (a caption of `shots`)."""
    lines = tuple(f"shot {n}: the tide turns" for n in range(1, shots + 1))
    defaults = fit_options(spec, GenerationOptions(model=spec.id))
    options = with_caption(defaults, Caption("\n".join(lines) or "waves", shots=lines), spec)
    if count > 1:  # an album: its draft is shown once its photos are in
        options = options.model_copy(update={"images": image_uses(spec, count)[0]})
        options = fit_options(spec, options, count)
    return options


def pressable(state: Draft, spec: ModelSpec) -> list[Any]:
    """Every option button the draft keyboard and its camera menu show now."""
    keyboard = draft_keyboard(state, CATALOGUE_OF_ALL)
    # The lengths row always shows the chosen length: a state without it is a broken draft.
    assert any(b.text.startswith("✅ ") for b in keyboard.inline_keyboard[0]), state.options
    markups = [keyboard]
    if any(b.callback_data == "d:7:cam" for row in keyboard.inline_keyboard for b in row):
        markups.append(camera_menu(state, spec))  # opened by the camera row only
    found = []
    for markup in markups:
        for row in markup.inline_keyboard:
            for button in row:
                pressed = decode(str(button.callback_data))
                assert pressed is not None
                if pressed.action in (
                    Action.DURATION,
                    Action.SOUND,
                    Action.MODE,
                    Action.CFG,
                    Action.IMAGES,
                    Action.CAMERA,
                    Action.SHOTS,
                ):
                    found.append(pressed)
    return found


def reachable(spec: ModelSpec, count: int, shots: int = 0) -> list[GenerationOptions]:
    """Every state the keyboard can reach from a new draft."""
    start = first_draft(spec, count, shots)
    seen = {start}
    queue = deque([start])
    while queue:
        options = queue.popleft()
        state = draft(options, count)
        for pressed in pressable(state, spec):
            following = apply_button(state, spec, pressed, CATALOGUE_OF_ALL)
            assert following is not None, (spec.id, options, pressed)  # shown, so it applies
            if following not in seen:
                seen.add(following)
                queue.append(following)
    return sorted(seen, key=repr)


def refusal_by_fake(spec: ModelSpec, options: GenerationOptions, count: int) -> str | None:
    """What the provider's fake says to the create this state makes; None if it accepts."""
    request = build_request(task_of(options, count), spec, IMAGES[:count], None)
    assert request_refusal(spec, request) is None, (spec.id, options)
    if spec.backend == "kie":
        body = {"model": spec.name, "input": build_input(request, "https://f/a.jpg", None)}
        if request.tail_image is not None:
            body["input"] = build_input(request, "https://f/a.jpg", "https://f/b.jpg")
        try:
            KIE._validate_create(body)
        except kie_fake._RejectedError as exc:
            return f"{exc.code}: {exc.msg}"
        return None
    wire = WIRES[spec.backend]
    kind = "multi-image2video" if request.reference_images else "image2video"
    payload = wire.multi_image_body(request) if request.reference_images else None
    payload = payload or wire.image2video_body(request)
    context = kling_fake._Context(spec.backend == "tuzi", "https://k/files", {})
    try:
        kling_fake._SCHEMAS[kind].validate(payload, context)
    except kling_fake._RefusalError as exc:
        return f"{exc.code}: {exc.message}"
    return None


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("spec", WALKED, ids=[spec.id for spec in WALKED])
def test_every_reachable_keyboard_state_is_accepted(spec: ModelSpec, count: int) -> None:
    states = reachable(spec, count)
    assert states
    refused = {
        repr(options): problem
        for options in states
        if (problem := refusal_by_fake(spec, options, count)) is not None
    }
    assert not refused, refused


def test_the_walk_reaches_the_features_the_map_allows() -> None:
    # A walk that reached nothing would pass the test above: show that it reaches each feature.
    by_id = {spec.id: spec for spec in WALKED}
    album = reachable(by_id["kling:kling-v2-1"], 2)
    assert any(o.images.value == "end_frame" and o.mode == "pro" for o in album)
    assert not any(o.images.value == "end_frame" and o.mode == "std" for o in album)
    camera = reachable(by_id["kling:kling-v1"], 1)
    assert any(o.camera for o in camera) and all(
        (o.mode, o.duration) == ("std", 5) for o in camera if o.camera
    )
    sound = reachable(by_id["kling:kling-v2-6"], 1)
    assert any(o.sound for o in sound) and all(o.mode == "pro" for o in sound if o.sound)
    assert any(o.mode == "std" for o in sound)
    assert len(reachable(by_id["kie:kling-2.6/image-to-video"], 1)) == 4  # 5/10 s × sound


def test_three_to_fifteen_seconds_are_all_reachable_in_one_row() -> None:
    by_id = {spec.id: spec for spec in WALKED}
    for model in ("kie:kling-3.0/video", "kie:kling/v3-turbo-image-to-video", "kling:kling-v3"):
        states = reachable(by_id[model], 2)
        assert {o.duration for o in states} == set(range(3, 16)), model
        for options in states:
            rows = draft_keyboard(draft(options, 2), CATALOGUE_OF_ALL).inline_keyboard
            assert len(rows[0]) <= 7  # never thirteen buttons in a row
    kie_3 = reachable(by_id["kie:kling-3.0/video"], 2)
    assert {o.mode for o in kie_3} == {"std", "pro", "4K"}
    assert any(o.images.value == "end_frame" and o.sound for o in kie_3)


@pytest.mark.parametrize("shots", [2, 5, 7])
@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("spec", WALKED, ids=[spec.id for spec in WALKED])
def test_every_reachable_state_of_a_caption_in_lines_is_accepted(
    spec: ModelSpec, count: int, shots: int
) -> None:
    states = reachable(spec, count, shots)
    refused = {
        repr(options): problem
        for options in states
        if (problem := refusal_by_fake(spec, options, count)) is not None
    }
    assert not refused, refused
    multi = [options for options in states if options.multi_shot]
    if spec.multi_shot is not None and shots <= spec.shots_max:
        # Several shots are reachable, never with an end frame, never shorter than 1 s each.
        assert multi and all(o.duration >= shots and o.images.value != "end_frame" for o in multi)
        assert any(not options.multi_shot for options in states)  # and back to one shot
    else:
        assert not multi
