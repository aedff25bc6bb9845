"""What each model accepts, and the offered models: behind the keyboard and every check."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.providers.base import VideoRequest

# The features a request may use, by the names the capability map and the drafts use.
SOUND = "sound"
END_FRAME = "end_frame"
CAMERA = "camera"
MOTION_BRUSH = "motion_brush"
MULTI_SHOT = "multi_shot"
# End frame, motion brush and camera control cannot be combined (providers.md, section D).
EXCLUSIVE = frozenset({END_FRAME, CAMERA, MOTION_BRUSH})


@dataclass(frozen=True)
class Where:
    """The modes and lengths in which a feature works; None: all the model has."""

    modes: frozenset[str] | None = None
    durations: frozenset[int] | None = None
    # Features it cannot be combined with on this model, besides the exclusive three.
    without: frozenset[str] = frozenset()

    def allows(self, mode: str | None, duration: int) -> bool:
        """Whether the feature works in this mode and length."""
        return (self.modes is None or mode in self.modes) and (
            self.durations is None or duration in self.durations
        )


ANYWHERE = Where()
# Kling 3.0's lengths: any whole number of seconds from 3 to 15 (providers.md, section D).
THREE_TO_FIFTEEN = tuple(range(3, 16))


@dataclass(frozen=True)
class ModelSpec:
    """One model of one backend: its options and the capability map of its features."""

    backend: str
    name: str
    label: str
    code: str
    prompt_max: int
    durations: tuple[int, ...] = (5, 10)
    negative_prompt_max: int = 0
    cfg_scale: bool = False
    modes: tuple[str, ...] = ()
    # Where each feature works; None: the model does not have it.
    sound: Where | None = None
    end_frame: Where | None = None
    camera: Where | None = None
    motion_brush: Where | None = None
    # Camera move types the model takes; None: all of them.
    camera_types: frozenset[str] | None = None
    multi_image: bool = False
    # Whether the request says the frame's shape (`aspect_ratio`); else the photo's decides.
    aspect_ratio: bool = False
    # Multi-shot: where it works, how many shots (each at least 1 s) and each shot's prompt.
    multi_shot: Where | None = None
    shots_max: int = 0
    shot_prompt_max: int = 0

    @property
    def id(self) -> str:
        """The model id used in configuration: `<backend>:<provider model>`."""
        return f"{self.backend}:{self.name}"

    def where(self, feature: str) -> Where | None:
        """Where a feature works on this model; None if the model does not have it."""
        found: Where | None = getattr(self, feature)
        return found

    def refusal(
        self,
        mode: str | None,
        duration: int,
        features: Iterable[str],
        camera_type: str | None,
        shots: int = 0,
    ) -> str | None:
        """Why the provider would refuse these choices, in plain English; None if it would not."""
        used = sorted(set(features))
        if MULTI_SHOT in used and self.multi_shot is not None:
            if not 2 <= shots <= self.shots_max:
                return f"{self.label} makes 2 to {self.shots_max} shots, not {shots}"
            if shots > duration:
                return f"{shots} shots need at least {shots} s (each shot at least 1 s)"
        if duration not in self.durations:
            return f"{self.label} makes {_alternatives(self.durations)} s videos, not {duration} s"
        if self.modes and mode not in self.modes:
            return f"{self.label} takes the modes {', '.join(self.modes)}, not {mode}"
        exclusive = [feature for feature in used if feature in EXCLUSIVE]
        if len(exclusive) > 1:
            return f"{' and '.join(_NAMES[f] for f in exclusive)} cannot be combined"
        for feature in used:
            where = self.where(feature)
            if where is None:
                return f"{self.label} has no {_NAMES[feature]}"
            if not where.allows(mode, duration):
                return f"{self.label} has {_NAMES[feature]} only {_describe(where)}"
            clash = sorted(where.without & set(used))
            if clash:
                return f"{self.label} has no {_NAMES[clash[0]]} with {_NAMES[feature]}"
        kinds = self.camera_types
        if camera_type is not None and kinds is not None and camera_type not in kinds:
            return f"{self.label} takes only {', '.join(sorted(kinds))} camera moves"
        return None


def request_refusal(spec: ModelSpec, request: VideoRequest) -> str | None:
    """Why the provider would refuse this request by the model's map; None if it would not."""
    used = []
    if request.tail_image is not None:
        used.append(END_FRAME)
    if request.camera is not None:
        used.append(CAMERA)
    if request.static_mask is not None or request.dynamic_masks:
        used.append(MOTION_BRUSH)
    if request.sound:
        used.append(SOUND)
    if request.shots:
        used.append(MULTI_SHOT)
    # The bot always sends a mode where the model has them; a request without one counts as
    # the model's first (on the official API its default, std).
    mode = (request.mode or spec.modes[0]) if spec.modes else None
    camera = request.camera.type if request.camera is not None else None
    refused = spec.refusal(mode, request.duration, used, camera, len(request.shots))
    if refused is None and request.shots:
        if sum(shot.duration for shot in request.shots) != request.duration:
            return f"the shots' lengths do not add up to {request.duration} s"
        if any(len(shot.prompt) > spec.shot_prompt_max for shot in request.shots):
            return f"{spec.label} takes shot prompts of at most {spec.shot_prompt_max} characters"
    return refused


_NAMES = {
    SOUND: "sound",
    END_FRAME: "an end frame",
    CAMERA: "camera moves",
    MOTION_BRUSH: "the motion brush",
    MULTI_SHOT: "multi-shot",
}


def _alternatives(values: Iterable[object]) -> str:
    items = [str(value) for value in values]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _describe(where: Where) -> str:
    parts = []
    if where.modes is not None:
        parts.append(f"in {_alternatives(sorted(where.modes))} mode")
    if where.durations is not None:
        parts.append(f"at {_alternatives(sorted(where.durations))} s")
    return " ".join(parts)


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
