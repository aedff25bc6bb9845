"""Every backend the bot knows, as their modules declare them, and what derives from that."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.providers import kie, kling, preview, tuzi
from bot.providers.backend import Backend, BuildContext, SettingsSection
from bot.providers.base import Provider
from bot.providers.catalogue import Catalogue, ModelSpec, Where

# In the order their models are offered; adding a backend is one module and one line here.
BACKENDS: tuple[Backend[Any], ...] = (kie.BACKEND, kling.BACKEND, tuzi.BACKEND, preview.BACKEND)
BY_NAME: dict[str, Backend[Any]] = {backend.name: backend for backend in BACKENDS}

CATALOGUE: tuple[ModelSpec, ...] = tuple(spec for b in BACKENDS for spec in b.models)
BACKEND_NAMES: dict[str, str] = {backend.name: backend.title for backend in BACKENDS}


def all_model_ids() -> list[str]:
    """Every model id the bot knows, offered or not."""
    return [spec.id for spec in CATALOGUE]


def configured_backends(settings: SettingsSection) -> list[str]:
    """The backends offered: the paid ones whose credentials are set, then the free ones
    that are switched on (or, left unset, on exactly when no paid backend is)."""
    paid = [b.name for b in BACKENDS if b.paid and b.enabled(settings)]
    free = []
    for backend in BACKENDS:
        if not backend.paid:
            switch = backend.enabled(settings)
            if switch if switch is not None else not paid:
                free.append(backend.name)
    return [*paid, *free]


def catalogue_of(backends: Iterable[str]) -> Catalogue:
    """The models of these backends, in their order."""
    chosen = [BY_NAME[name] for name in backends]
    return Catalogue((spec for b in chosen for spec in b.models), BACKEND_NAMES)


def problems(settings: SettingsSection) -> list[str]:
    """What the backends' settings have wrong, and a line when none is configured."""
    found = [line for backend in BACKENDS for line in backend.problems(settings)]
    if not found and not configured_backends(settings):
        *most, last = [b.hint for b in BACKENDS if b.hint]
        found.append(f"Configure a video backend: set {', '.join(most)}, or {last}.")
    return found


def api_root(settings: SettingsSection, name: str) -> str | None:
    """Where a backend's API lives: its `<NAME>_API_URL` setting; None for one without."""
    root = getattr(settings, f"{name}_api_url", None)
    return root if isinstance(root, str) else None


def build_providers(settings: SettingsSection, context: BuildContext) -> dict[str, Provider]:
    """One provider per configured backend, keyed by backend name."""
    return {name: BY_NAME[name].build(settings, context) for name in configured_backends(settings)}


def _where(where: Where | None, kinds: frozenset[str] | None = None) -> str:
    """A capability-map cell for people: –, yes, or where it works."""
    if where is None:
        return "–"
    limits = []
    if where.modes is not None:
        limits.append("/".join(sorted(where.modes)))
    if where.durations is not None:
        limits.append("/".join(str(d) for d in sorted(where.durations)) + " s")
    text = " ".join(limits) + " only" if limits else "yes"
    if kinds is not None:
        text = f"{'/'.join(sorted(kinds))} moves, {text}"
    if where.without:
        text += ", no " + "/".join(sorted(where.without))
    return text


def _lengths(durations: tuple[int, ...]) -> str:
    if len(durations) > 2 and durations == tuple(range(durations[0], durations[-1] + 1)):
        return f"{durations[0]}–{durations[-1]} s"
    return ", ".join(f"{d} s" for d in durations)


def model_table() -> str:
    """The README's model table, made from the catalogue (tu-zi offers the official list)."""
    rows = [
        "| model id | prompt / negative | lengths | modes | sound | end frame | camera | "
        "motion brush | cfg_scale | reference images | shots |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in CATALOGUE:
        if spec.backend == "tuzi":
            continue
        negative = str(spec.negative_prompt_max) if spec.negative_prompt_max else "–"
        rows.append(
            "| "
            + " | ".join(
                [
                    f"`{spec.id}`",
                    f"{spec.prompt_max} / {negative}",
                    _lengths(spec.durations),
                    ", ".join(spec.modes) or "–",
                    _where(spec.sound),
                    _where(spec.end_frame),
                    _where(spec.camera, spec.camera_types),
                    _where(spec.motion_brush),
                    "yes" if spec.cfg_scale else "–",
                    "2–4" if spec.multi_image else "–",
                    f"2–{spec.shots_max}" if spec.multi_shot is not None else "–",
                ]
            )
            + " |"
        )
    return "\n".join(rows)
