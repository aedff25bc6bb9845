"""What each model accepts, and the offered models: behind the keyboard and every check."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """One model of one backend and the options it has."""

    backend: str
    name: str
    label: str
    code: str
    prompt_max: int
    durations: tuple[int, ...] = (5, 10)
    sound: bool = False
    negative_prompt_max: int = 0
    cfg_scale: bool = False
    end_frame: bool = False
    modes: tuple[str, ...] = ()
    camera: bool = False
    motion_brush: bool = False
    multi_image: bool = False

    @property
    def id(self) -> str:
        """The model id used in configuration: `<backend>:<provider model>`."""
        return f"{self.backend}:{self.name}"


class Catalogue:
    """The models of the configured backends, looked up by id or short code."""

    def __init__(self, models: Iterable[ModelSpec], titles: Mapping[str, str]) -> None:
        self.models: tuple[ModelSpec, ...] = tuple(models)
        self._titles = dict(titles)
        self._several_backends = len({spec.backend for spec in self.models}) > 1
        self._by_id = {spec.id: spec for spec in self.models}
        self._by_code = {spec.code: spec for spec in self.models}

    def get(self, model_id: str) -> ModelSpec | None:
        """The offered model with this id, if any."""
        return self._by_id.get(model_id)

    def title(self, backend: str) -> str:
        """A backend's name for people ("kie.ai")."""
        return self._titles.get(backend, backend)

    def label(self, model_id: str) -> str:
        """The model's display name, with its backend when several are offered."""
        spec = self._by_id.get(model_id)
        if spec is None:
            return model_id.split(":", 1)[-1]
        if self._several_backends:
            return f"{spec.label} · {self.title(spec.backend)}"
        return spec.label

    def by_code(self, code: str) -> ModelSpec | None:
        """The offered model with this short code, if any."""
        return self._by_code.get(code)

    def default(self, preferred: str | None = None) -> ModelSpec:
        """`preferred` if it is offered, else the first model."""
        if preferred and preferred in self._by_id:
            return self._by_id[preferred]
        return self.models[0]
