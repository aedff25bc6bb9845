"""Draft rules: fitting options to a model and checking a draft before anything is paid."""

from __future__ import annotations

from bot.providers.catalogue import ModelSpec
from bot.texts import t
from storage.models import Draft, GenerationOptions


def fit_options(spec: ModelSpec, options: GenerationOptions) -> GenerationOptions:
    """`options` moved to `spec`'s model, dropping whatever that model lacks."""
    duration = options.duration if options.duration in spec.durations else spec.durations[0]
    negative = options.negative_prompt if spec.negative_prompt_max else None
    if negative:
        negative = negative[: spec.negative_prompt_max]
    return GenerationOptions(
        model=spec.id,
        duration=duration,
        sound=options.sound and spec.sound,
        negative_prompt=negative,
        cfg_scale=options.cfg_scale if spec.cfg_scale else None,
    )


def draft_problem(draft: Draft, spec: ModelSpec) -> str | None:
    """Why this draft cannot be generated as it is, in the user's language; None if it can."""
    prompt = draft.prompt or ""
    if len(prompt) > spec.prompt_max:
        return t(
            draft.lang,
            "prompt_too_long",
            length=len(prompt),
            model=spec.label,
            limit=spec.prompt_max,
        )
    return None
