"""What each model accepts: the one table behind the keyboard and the checks before paying."""

from __future__ import annotations

from collections.abc import Iterable
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


CATALOGUE: tuple[ModelSpec, ...] = (
    ModelSpec(
        backend="kie",
        name="kling-2.6/image-to-video",
        label="Kling 2.6",
        code="k26",
        prompt_max=1000,
        sound=True,
    ),
    ModelSpec(
        backend="kie",
        name="kling/v2-5-turbo-image-to-video-pro",
        label="Kling 2.5 Turbo Pro",
        code="k25tp",
        prompt_max=2500,
        negative_prompt_max=2496,
        cfg_scale=True,
        end_frame=True,
    ),
    ModelSpec(
        backend="kie",
        name="kling/v2-1-pro",
        label="Kling 2.1 Pro",
        code="k21p",
        prompt_max=5000,
        negative_prompt_max=500,
        cfg_scale=True,
        end_frame=True,
    ),
)


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


PREVIEW = ModelSpec(
    backend="preview",
    name="zoom",
    label="Free preview",
    code="pv",
    prompt_max=5000,
    camera=True,
)

CATALOGUE = CATALOGUE + official_models("kling", "o") + official_models("tuzi", "t") + (PREVIEW,)


BACKEND_NAMES = {"kie": "kie.ai", "kling": "Kling API", "tuzi": "tu-zi", "preview": "no AI"}


class Catalogue:
    """The models of the configured backends, looked up by id or short code."""

    def __init__(self, backends: Iterable[str], models: Iterable[ModelSpec] = CATALOGUE) -> None:
        wanted = list(backends)
        self._several_backends = len(wanted) > 1
        self.models: tuple[ModelSpec, ...] = tuple(
            spec for backend in wanted for spec in models if spec.backend == backend
        )
        self._by_id = {spec.id: spec for spec in self.models}
        self._by_code = {spec.code: spec for spec in self.models}

    def get(self, model_id: str) -> ModelSpec | None:
        """The offered model with this id, if any."""
        return self._by_id.get(model_id)

    def label(self, model_id: str) -> str:
        """The model's display name, with its backend when several are offered."""
        spec = self._by_id.get(model_id)
        if spec is None:
            return model_id.split(":", 1)[-1]
        if self._several_backends:
            return f"{spec.label} · {BACKEND_NAMES.get(spec.backend, spec.backend)}"
        return spec.label

    def by_code(self, code: str) -> ModelSpec | None:
        """The offered model with this short code, if any."""
        return self._by_code.get(code)

    def default(self, preferred: str | None = None) -> ModelSpec:
        """`preferred` if it is offered, else the first model."""
        if preferred and preferred in self._by_id:
            return self._by_id[preferred]
        return self.models[0]


def all_model_ids() -> list[str]:
    """Every model id the bot knows, offered or not."""
    return [spec.id for spec in CATALOGUE]
