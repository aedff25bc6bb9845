"""Every backend the bot knows, as their modules declare them, and what derives from that."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.providers import kie, kling, preview, tuzi
from bot.providers.backend import Backend, BuildContext, SettingsSection
from bot.providers.base import Provider
from bot.providers.catalogue import Catalogue, ModelSpec

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


def build_providers(settings: SettingsSection, context: BuildContext) -> dict[str, Provider]:
    """One provider per configured backend, keyed by backend name."""
    return {name: BY_NAME[name].build(settings, context) for name in configured_backends(settings)}
