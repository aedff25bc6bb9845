"""Pieces several screens share: excerpts, ages, the sound mark, the row of lengths."""

from __future__ import annotations

from bot.chat.texts import t
from bot.providers.catalogue import ModelSpec
from storage.models import GenerationOptions

# Lengths always worth one tap when a model takes many (3-15 s): the usual ones.
COMMON_DURATIONS = (5, 10)


def excerpt(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def sound_mark(lang: str, spec: ModelSpec | None, options: GenerationOptions) -> str:
    """The sound part of an options line, on models with sound; else nothing."""
    if spec is None or not spec.sound:
        return ""
    return t(lang, "draft.sound_on" if options.sound else "draft.sound_off")


def duration_choices(durations: tuple[int, ...], current: int) -> list[int]:
    """The lengths to show as buttons: all of a few; of many, the ends, the usual ones and
    the current one's neighbours, so 3-15 s fits one row and any length is a few taps away."""
    if len(durations) <= 4:
        return list(durations)
    index = durations.index(current) if current in durations else 0
    near = durations[max(0, index - 1) : index + 2]
    wanted = {durations[0], durations[-1], *near, *COMMON_DURATIONS}
    return [seconds for seconds in durations if seconds in wanted]


def age(lang: str, seconds: float) -> str:
    """A short relative age."""
    seconds = max(0, int(seconds))
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return t(lang, f"age.{unit}", n=seconds // size)
    return t(lang, "age.seconds", n=seconds)
