"""`generate`'s options: parsed from the arguments, checked against the model before paying."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from bot.cli.common import UsageError
from bot.core.caption import shot_lines
from bot.providers.base import MAX_DYNAMIC_MASKS, MAX_TRAJECTORY_POINTS, TrajectoryPoint
from bot.providers.camera import PRESETS
from bot.providers.catalogue import (
    CAMERA,
    END_FRAME,
    MOTION_BRUSH,
    MULTI_SHOT,
    SOUND,
    Catalogue,
    ModelSpec,
)

# (flag, ModelSpec attribute that must be truthy for a model to take it)
FEATURES = (
    ("--sound", "sound"),
    ("--mode", "modes"),
    ("--tail", "end_frame"),
    ("--negative", "negative_prompt_max"),
    ("--cfg", "cfg_scale"),
    ("--camera", "camera"),
    ("--static-mask/--dynamic-mask", "motion_brush"),
    ("--aspect", "aspect_ratio"),
)


@dataclass(frozen=True)
class MaskArg:
    """A `--dynamic-mask`: the mask's file and the path it moves along."""

    path: Path
    points: tuple[TrajectoryPoint, ...]


@dataclass(frozen=True)
class GenerateOptions:
    """The arguments of `generate`, typed."""

    image: Path
    prompt: str
    model: str | None
    duration: int | None
    sound: bool | None
    mode: str | None
    tail: Path | None
    negative: str | None
    cfg: float | None
    camera: str | None
    static_mask: Path | None
    dynamic_masks: tuple[MaskArg, ...]
    out: Path | None
    timeout: float | None
    # The prompt's shots: its numbered lines, or with --shots each line.
    shots: tuple[str, ...] = ()
    aspect: Literal["16:9", "9:16", "1:1"] | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> GenerateOptions:
        """Copy the parsed arguments."""
        return cls(
            image=args.image,
            prompt=args.prompt,
            model=args.model,
            duration=args.duration,
            sound=args.sound,
            mode=args.mode,
            tail=args.tail,
            negative=args.negative,
            cfg=args.cfg,
            camera=args.camera,
            static_mask=args.static_mask,
            dynamic_masks=tuple(args.dynamic_mask or ()),
            out=args.out,
            timeout=args.timeout,
            shots=shot_lines(args.prompt, every_line=args.shots),
            aspect=args.aspect,
        )

    @property
    def motion_brush(self) -> bool:
        """Whether a static or dynamic mask was given."""
        return self.static_mask is not None or bool(self.dynamic_masks)

    @property
    def features(self) -> list[str]:
        """The capability-map features the options use."""
        used = [END_FRAME] if self.tail is not None else []
        used += [CAMERA] if self.camera is not None else []
        used += [MOTION_BRUSH] if self.motion_brush else []
        used += [MULTI_SHOT] if self.shots else []
        return used + ([SOUND] if self.sound else [])

    @property
    def camera_type(self) -> str | None:
        """The type of the chosen camera move (`simple` or a preset)."""
        return PRESETS[self.camera].type if self.camera in PRESETS else None


def with_defaults(spec: ModelSpec, options: GenerateOptions) -> tuple[GenerateOptions, list[str]]:
    """The options with a mode and length the model's map accepts where none was given.

    A feature that needs another mode or length than the default gets it, said on stderr;
    what was given stays as given (and is refused if the map refuses it).
    """
    durations = (options.duration,) if options.duration is not None else spec.durations
    modes: tuple[str | None, ...] = (options.mode,) if options.mode else spec.modes or (None,)
    for duration in durations:
        for mode in modes:
            refused = spec.refusal(
                mode, duration, options.features, options.camera_type, len(options.shots)
            )
            if refused is None:
                notes = []
                if options.mode is None and spec.modes and mode != spec.modes[0]:
                    notes.append(f"--mode {mode}: {spec.label} needs it for these options")
                if options.duration is None and duration != spec.durations[0]:
                    notes.append(f"--duration {duration}: {spec.label} needs it for these options")
                chosen = replace(options, mode=mode, duration=duration)
                return chosen, notes
    return options, []


def mask_arg(text: str) -> MaskArg:
    """Parse `PNG:x1,y1;x2,y2;...` (argparse type)."""
    path, colon, points = text.rpartition(":")
    try:
        pairs = [point.split(",") for point in points.split(";") if point.strip()]
        parsed = tuple(TrajectoryPoint(x=int(x), y=int(y)) for x, y in pairs)
    except ValueError:  # also pydantic's ValidationError: negative coordinates
        parsed = ()
    if not colon or not path or not parsed:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected PNG:x1,y1;x2,y2;... (non-negative whole pixels)"
        )
    if not 2 <= len(parsed) <= MAX_TRAJECTORY_POINTS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a path needs 2 to {MAX_TRAJECTORY_POINTS} points, not {len(parsed)}"
        )
    return MaskArg(Path(path), parsed)


def unit_interval(text: str) -> float:
    """A number from 0 to 1 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1")
    return value


def feature_problems(spec: ModelSpec, catalogue: Catalogue, options: GenerateOptions) -> list[str]:
    """The options given that the model does not take, with the models that do."""
    used = {
        "--sound": bool(options.sound),
        "--mode": options.mode is not None,
        "--tail": options.tail is not None,
        "--negative": options.negative is not None,
        "--cfg": options.cfg is not None,
        "--camera": options.camera is not None,
        "--static-mask/--dynamic-mask": options.motion_brush,
        "--aspect": options.aspect is not None,
    }
    found = []
    for flag, attribute in FEATURES:
        if used[flag] and not getattr(spec, attribute):
            takers = [m.id for m in catalogue.models if getattr(m, attribute)]
            others = ", ".join(takers) or "none of the configured ones"
            found.append(f"{spec.id} does not take {flag} (models that do: {others})")
    return found


def option_problems(spec: ModelSpec, catalogue: Catalogue, options: GenerateOptions) -> list[str]:
    """Everything about the options that the model would refuse, one line each."""
    found = feature_problems(spec, catalogue, options)
    if not options.prompt.strip():
        found.append("the prompt is empty")
    if len(options.prompt) > spec.prompt_max:
        found.append(
            f"the prompt has {len(options.prompt)} characters; {spec.id} takes {spec.prompt_max}"
        )
    if options.duration is not None and options.duration not in spec.durations:
        allowed = " or ".join(str(d) for d in spec.durations)
        found.append(f"--duration {options.duration}: {spec.id} makes {allowed} s videos")
    if options.mode is not None and spec.modes and options.mode not in spec.modes:
        found.append(f"--mode {options.mode}: {spec.id} takes {', '.join(spec.modes)}")
    limit = spec.negative_prompt_max
    if options.negative is not None and limit and len(options.negative) > limit:
        found.append(f"the negative prompt has {len(options.negative)} characters; limit {limit}")
    if sum([options.tail is not None, options.camera is not None, options.motion_brush]) > 1:
        found.append("--tail, --camera and the motion brush (masks) cannot be combined")
    if len(options.dynamic_masks) > MAX_DYNAMIC_MASKS:
        found.append(f"{len(options.dynamic_masks)} dynamic masks; at most {MAX_DYNAMIC_MASKS}")
    if options.shots and spec.multi_shot is not None:
        longest = max(len(shot) for shot in options.shots)
        if longest > spec.shot_prompt_max:
            found.append(f"a shot has {longest} characters; {spec.id} takes {spec.shot_prompt_max}")
    if not found:
        fitted, _ = with_defaults(spec, options)
        mode = (fitted.mode or spec.modes[0]) if spec.modes else None
        duration = fitted.duration or spec.durations[0]
        refused = spec.refusal(
            mode, duration, fitted.features, fitted.camera_type, len(fitted.shots)
        )
        if refused is not None:
            found.append(f"{spec.id}: {refused}")
    return found


@dataclass(frozen=True)
class Output:
    """Where the video goes: a directory, and a file name unless it follows from the task id."""

    directory: Path
    name: str | None

    def path(self, image: Path, task_id: str) -> Path:
        """The file to write: the given name, or `<image stem>-<task id>.mp4`."""
        safe = re.sub(r"[^A-Za-z0-9_-]+", "_", task_id).strip("_")[:80] or "video"
        return (self.directory / (self.name or f"{image.stem}-{safe}.mp4")).absolute()


def output_of(out: Path | None) -> Output:
    """Check, before paying, that the output can be written."""
    if out is None:
        target = Output(Path.cwd(), None)
    elif out.is_dir():
        target = Output(out, None)
    else:
        target = Output(out.parent, out.name)
    if not target.directory.is_dir():
        raise UsageError(f"--out {out}: the folder {target.directory} does not exist")
    if not os.access(target.directory, os.W_OK):
        raise UsageError(f"cannot write to {target.directory}")
    return target
