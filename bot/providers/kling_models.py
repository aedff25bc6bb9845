"""The official Kling model list, offered by Kling itself and by proxies of its shape."""

from __future__ import annotations

from bot.providers.catalogue import ModelSpec

_OFFICIAL_PROMPT = 2500
_STD_PRO = ("std", "pro")

# (name, label, code, options) of the official model list; kling-v2* take no cfg_scale.
_OFFICIAL: tuple[tuple[str, str, str, dict[str, object]], ...] = (
    ("kling-v2-6", "Kling 2.6", "26", {"sound": True, "modes": _STD_PRO}),
    ("kling-v2-5-turbo", "Kling 2.5 Turbo", "25t", {"modes": _STD_PRO, "end_frame": True}),
    ("kling-v2-1", "Kling 2.1", "21", {"modes": _STD_PRO, "end_frame": True}),
    ("kling-v2-1-master", "Kling 2.1 Master", "21m", {}),
    ("kling-v2-master", "Kling 2.0 Master", "2m", {}),
    (
        "kling-v1-6",
        "Kling 1.6",
        "16",
        {
            "modes": _STD_PRO,
            "cfg_scale": True,
            "end_frame": True,
            "camera": True,
            "motion_brush": True,
            "multi_image": True,
        },
    ),
    (
        "kling-v1-5",
        "Kling 1.5",
        "15",
        {
            "modes": _STD_PRO,
            "cfg_scale": True,
            "end_frame": True,
            "camera": True,
            "motion_brush": True,
        },
    ),
    (
        "kling-v1",
        "Kling 1.0",
        "10",
        {
            "modes": _STD_PRO,
            "cfg_scale": True,
            "end_frame": True,
            "camera": True,
            "motion_brush": True,
        },
    ),
)


def official_models(
    backend: str, code_prefix: str, label_suffix: str = ""
) -> tuple[ModelSpec, ...]:
    """The official model list as offered by one official-shape backend."""
    return tuple(
        ModelSpec(
            backend=backend,
            name=name,
            label=label,
            code=code_prefix + code,
            prompt_max=_OFFICIAL_PROMPT,
            negative_prompt_max=_OFFICIAL_PROMPT,
            **options,  # type: ignore[arg-type]
        )
        for name, label, code, options in _OFFICIAL
    )
