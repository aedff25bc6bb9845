"""The official Kling model list, offered by Kling itself and by proxies of its shape."""

from __future__ import annotations

from bot.providers.catalogue import (
    ANYWHERE,
    END_FRAME,
    SOUND,
    THREE_TO_FIFTEEN,
    ModelSpec,
    Where,
)

_OFFICIAL_PROMPT = 2500
_STD_PRO = ("std", "pro")
_PRO = frozenset({"pro"})
_FIVE = frozenset({5})

# The official capability map (image-to-video), by model, mode and length: what is not listed
# is refused with code 1201 (shared/docs/providers.md, section D). No v2.x takes cfg_scale.
_OFFICIAL: tuple[tuple[str, str, str, dict[str, object]], ...] = (
    (
        "kling-v2-6",
        "Kling 2.6",
        "26",
        {
            "modes": _STD_PRO,
            # Sound on needs pro (std is silent); an end frame needs pro, and then no sound.
            "sound": Where(modes=_PRO),
            "end_frame": Where(modes=_PRO, without=frozenset({SOUND})),
        },
    ),
    (
        # ⚠️ the name as vercel/ai's klingai provider spells it; sound and end frame anywhere.
        "kling-v3",
        "Kling 3.0",
        "3",
        {
            "modes": _STD_PRO,
            "durations": THREE_TO_FIFTEEN,
            "sound": ANYWHERE,
            "end_frame": ANYWHERE,
            # multi_prompt: up to 6 shots, prompts up to 512. Whether an end frame goes with
            # it is not documented: not offered together.
            "multi_shot": Where(without=frozenset({END_FRAME})),
            "shots_max": 6,
            "shot_prompt_max": 512,
        },
    ),
    ("kling-v2-5-turbo", "Kling 2.5 Turbo", "25t", {"modes": _STD_PRO, "end_frame": Where(_PRO)}),
    ("kling-v2-1", "Kling 2.1", "21", {"modes": _STD_PRO, "end_frame": Where(_PRO)}),
    ("kling-v2-1-master", "Kling 2.1 Master", "21m", {}),
    ("kling-v2-master", "Kling 2.0 Master", "2m", {}),
    (
        "kling-v1-6",
        "Kling 1.6",
        "16",
        {"modes": _STD_PRO, "cfg_scale": True, "end_frame": Where(_PRO), "multi_image": True},
    ),
    (
        "kling-v1-5",
        "Kling 1.5",
        "15",
        {
            "modes": _STD_PRO,
            "cfg_scale": True,
            "end_frame": Where(_PRO),
            "camera": Where(_PRO, _FIVE),
            "camera_types": frozenset({"simple"}),
            "motion_brush": Where(_PRO, _FIVE),
        },
    ),
    (
        "kling-v1",
        "Kling 1.0",
        "10",
        {
            "modes": _STD_PRO,
            "cfg_scale": True,
            "end_frame": Where(durations=_FIVE),
            "camera": Where(frozenset({"std"}), _FIVE),
            "motion_brush": Where(durations=_FIVE),
        },
    ),
)

# The official models that take cfg_scale (tu-zi's doc marks it required for every request).
CFG_SCALE_MODELS = frozenset(name for name, _, _, options in _OFFICIAL if options.get("cfg_scale"))


def official_models(
    backend: str, code_prefix: str, *, aspect_ratio: bool = False
) -> tuple[ModelSpec, ...]:
    """The official model list as offered by one official-shape backend (`aspect_ratio`: it
    takes the field on image-to-video, as tu-zi does)."""
    return tuple(
        ModelSpec(
            backend=backend,
            name=name,
            label=label,
            code=code_prefix + code,
            prompt_max=_OFFICIAL_PROMPT,
            negative_prompt_max=_OFFICIAL_PROMPT,
            aspect_ratio=aspect_ratio,
            **options,  # type: ignore[arg-type]
        )
        for name, label, code, options in _OFFICIAL
    )
