"""The command line: `kling-bot generate` makes one video, `kling-bot check` tests the setup."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlparse
from urllib.request import url2pathname

import httpx
from pydantic import SecretStr, ValidationError
from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot import __version__
from bot.caption import shot_lines
from bot.config import Settings
from bot.engine.images import LONGEST, SMALLEST, ImageError, prepare_image
from bot.engine.timing import Schedule, kind, learned_times
from bot.logs import RedactingFormatter, configure_logging
from bot.providers.backend import BuildContext
from bot.providers.base import (
    MAX_DYNAMIC_MASKS,
    MAX_TRAJECTORY_POINTS,
    DynamicMask,
    ImageFile,
    Provider,
    ProviderState,
    TrajectoryPoint,
    VideoRequest,
    shots_of,
)
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
from bot.providers.errors import ProviderError, ProviderTimeoutError
from bot.providers.http import USER_AGENT
from bot.providers.paid import UncertainCreateError, create_once
from bot.providers.registry import BACKEND_NAMES, all_model_ids, api_root, build_providers
from bot.providers.retry import with_retries

PROG = "kling-bot"
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130
# Like the bot: passing refusals (rate limits, 5xx, refused connections) clear within a minute.
ATTEMPTS = 5
RETRY_BASE = 1.0
DOWNLOAD_ATTEMPTS = 3
CHUNK = 256 * 1024
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
# A check gives up on a server that has not answered after this long (`check --timeout`),
# and recalls on stderr every REMIND_EVERY seconds what it is still waiting for.
CHECK_SECONDS = 15.0
CHECK_CONNECT_SECONDS = 10.0
REMIND_EVERY = 5.0

REASONS = {
    "auth": "the key was refused",
    "no_credits": "no credits or resource packs left",
    "invalid_request": "the request was refused",
    "moderation": "the prompt or image was refused by moderation",
    "generation_failed": "the provider refused to generate",
    "not_found": "the provider does not know the task",
    "busy": "the provider is busy (rate limit); try again later",
    "unavailable": "the provider is unavailable",
    "uncertain": "no clear answer: the task may or may not have started",
    "key_limit": "the key has reached the spending limit set for it (a kie sub-key's own limit)",
    "blocked": "the provider's firewall refused this server",
}
IMAGE_REASONS = {
    "image_unreadable": "is not a JPEG, PNG or WebP image that can be read",
    "image_too_small": f"is too small (under {SMALLEST} px on a side)",
    "image_shape": f"is too long and narrow (more than {LONGEST}:1)",
    "image_too_large": "has too many pixels to decode safely",
    "image_animated": "is an animation (GIF), not a still image",
}
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


# Backends whose display label says little on its own.
ROW_NAMES = {"preview": "preview (no AI)"}


class CliError(Exception):
    """Ends the command with `status` after printing `lines` to stderr."""

    status = FAILED

    def __init__(self, *lines: str) -> None:
        super().__init__(*lines)
        self.lines = lines


class UsageError(CliError):
    """Bad arguments or configuration: nothing was paid for."""

    status = USAGE


class Masker:
    """Masks secret values (and anything shaped like a bot token) in text for the terminal."""

    def __init__(self) -> None:
        self._formatter = RedactingFormatter("%(message)s", ())

    def learn(self, secrets: Iterable[str]) -> None:
        """Mask these values too."""
        self._formatter = RedactingFormatter("%(message)s", secrets)

    def __call__(self, text: str) -> str:
        return self._formatter.redact(text)


def say(masker: Masker, line: str) -> None:
    """One line to stderr, prefixed with the program's name."""
    print(f"{PROG}: {masker(line)}", file=sys.stderr, flush=True)


# ---- configuration ---------------------------------------------------------------------------


def load_settings(masker: Masker, *, need_bot: bool) -> Settings:
    """Settings from the environment and `.env`; UsageError with the bot's own lines if unusable."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise UsageError(
            *(
                f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
                for err in exc.errors()
            )
        ) from None
    masker.learn(settings.secrets())
    checked = settings
    if not need_bot:  # `generate` needs a backend, not the bot's token or webhook
        unused = {"telegram_bot_token": SecretStr("unused"), "telegram_webhook": False}
        checked = settings.model_copy(update=unused)
    problems = checked.problems()
    if problems:
        raise UsageError(*problems)
    return settings


def quiet_logging(settings: Settings) -> None:
    """Log warnings and errors only, unless LOG_LEVEL asks for more (or less)."""
    level = settings.log_level if "log_level" in settings.model_fields_set else logging.WARNING
    configure_logging(settings.secrets(), level=level, form=settings.log_format)


def offered_ids(catalogue: Catalogue) -> str:
    """The ids of the offered models, comma-separated."""
    return ", ".join(spec.id for spec in catalogue.models)


def choose_model(settings: Settings, requested: str | None) -> ModelSpec:
    """The requested model, else DEFAULT_MODEL, else the first; UsageError if not offered."""
    catalogue = settings.catalogue()
    if not catalogue.models:
        backends = ", ".join(settings.configured_backends())
        raise UsageError(f"the configured backends ({backends}) offer no models")
    model_id = requested or settings.default_model
    if model_id is None:
        return catalogue.default()
    spec = catalogue.get(model_id)
    if spec is None:
        where = f"--model {model_id}" if requested else f"DEFAULT_MODEL={model_id}"
        hint = "its backend is not configured" if model_id in all_model_ids() else "unknown model"
        raise UsageError(
            f"{where} is not offered ({hint}); choose one of: {offered_ids(catalogue)}"
        )
    return spec


# ---- generate: arguments -----------------------------------------------------------------------


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


def positive(text: str) -> float:
    """A number above 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
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


# ---- generate: images and request --------------------------------------------------------------


def read_image(path: Path, accepted: tuple[str, ...], what: str) -> ImageFile:
    """The image at `path`, checked and made acceptable; UsageError if it cannot be used."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    try:
        return prepare_image(data, accepted, what.replace(" ", "-"))
    except ImageError as exc:
        reason = IMAGE_REASONS.get(exc.reason, exc.reason)
        raise UsageError(f"the {what} {path} {reason}") from None


def read_mask(path: Path, accepted: tuple[str, ...], image: ImageFile, what: str) -> ImageFile:
    """A mask image, which must have the photo's shape."""
    mask = read_image(path, accepted, what)
    if (
        abs(mask.width * image.height - image.width * mask.height)
        > 0.01 * mask.height * image.height
    ):
        raise UsageError(
            f"the {what} {path} is {mask.width}x{mask.height}; it must have the image's shape "
            f"({image.width}x{image.height})"
        )
    return mask


def build_request(
    spec: ModelSpec, options: GenerateOptions, accepted: tuple[str, ...]
) -> VideoRequest:
    """Read the images and make the provider-neutral request (external id `cli-<hex>`)."""
    image = read_image(options.image, accepted, "image")
    tail = read_image(options.tail, accepted, "end frame") if options.tail else None
    static = None
    if options.static_mask is not None:
        static = read_mask(options.static_mask, accepted, image, "static mask")
    dynamic = tuple(
        DynamicMask(
            mask=read_mask(mask.path, accepted, image, f"dynamic mask {n}"),
            trajectories=mask.points,
        )
        for n, mask in enumerate(options.dynamic_masks, 1)
    )
    try:
        return VideoRequest(
            model=spec.name,
            prompt=options.prompt,
            image=image,
            duration=options.duration or spec.durations[0],
            mode=(options.mode or spec.modes[0]) if spec.modes else None,
            sound=bool(options.sound) if spec.sound else None,
            negative_prompt=options.negative,
            cfg_scale=options.cfg,
            tail_image=tail,
            camera=PRESETS[options.camera] if options.camera else None,
            static_mask=static,
            dynamic_masks=dynamic,
            external_id=f"cli-{uuid.uuid4().hex}",
            shots=shots_of(options.shots, options.duration or spec.durations[0]),
            aspect=options.aspect,
        )
    except ValidationError as exc:
        raise UsageError(str(exc.errors()[0]["msg"])) from None


# ---- generate: progress ------------------------------------------------------------------------


class Reporter(Protocol):
    """Shows how far the generation got."""

    def stage(self, name: str, detail: str = "") -> None:
        """A new stage began (or its detail changed)."""

    def transfer(self, done: int, total: int | None) -> None:
        """Bytes downloaded so far."""

    def finish(self, line: str) -> None:
        """Stop showing progress and print a last line."""

    def close(self) -> None:
        """Stop showing progress; idempotent."""


class PlainReporter:
    """Short lines on stderr, one per stage: for logs and pipes."""

    def __init__(self) -> None:
        self._last = ""

    def stage(self, name: str, detail: str = "") -> None:
        """Print the stage if it changed."""
        if name != self._last:
            self._last = name
            print(f"{PROG}: {name}{f' ({detail})' if detail else ''}", file=sys.stderr, flush=True)

    def transfer(self, done: int, total: int | None) -> None:
        """Nothing: the plain output stays short."""

    def finish(self, line: str) -> None:
        """Print the last line."""
        print(f"{PROG}: {line}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Nothing to stop."""


class RichReporter:
    """A live spinner/progress bar on stderr with the stage, its detail and the elapsed time."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task("starting", total=None, detail="")
        self._progress.start()

    def stage(self, name: str, detail: str = "") -> None:
        """Show the stage; the bar pulses until bytes are counted."""
        self._progress.update(self._task, description=name, detail=detail, total=None)

    def transfer(self, done: int, total: int | None) -> None:
        """Show bytes downloaded, with a bar when the size is known."""
        detail = decimal(done) + (f" of {decimal(total)}" if total else "")
        self._progress.update(self._task, completed=done, total=total or None, detail=detail)

    def finish(self, line: str) -> None:
        """Remove the bar and print the last line."""
        self.close()
        self._console.print(f"[green]✓[/green] {line}", highlight=False)

    def close(self) -> None:
        """Remove the bar."""
        self._progress.stop()


def make_reporter() -> Reporter:
    """A live display on a terminal, short plain lines otherwise."""
    if sys.stderr.isatty():
        return RichReporter(Console(stderr=True))
    return PlainReporter()


# ---- generate: create, wait, download ----------------------------------------------------------


def describe(backend: str, exc: ProviderError) -> str:
    """A provider error in plain words, with the provider's own message."""
    name = BACKEND_NAMES.get(backend, backend)
    return f"{name}: {REASONS.get(exc.reason, 'error')}: {exc.message}"


async def create_task(provider: Provider, request: VideoRequest, reporter: Reporter) -> str:
    """Prepare (free, retried) and start (paid: never twice for one request) the task."""
    reporter.stage("uploading", BACKEND_NAMES.get(provider.name, provider.name))
    prepared = await with_retries(
        lambda: provider.prepare(request),
        attempts=ATTEMPTS,
        base=RETRY_BASE,
        should_retry=lambda exc: exc.retryable,
    )
    reporter.stage("creating the task")

    async def lost(exc: ProviderError) -> None:
        reporter.stage("checking whether the task started", REASONS.get("uncertain", ""))

    return await create_once(
        provider, prepared, request.external_id, base=RETRY_BASE, on_uncertain=lost
    )


async def wait_for_video(
    provider: Provider, task_id: str, schedule: Schedule, patience: float, reporter: Reporter
) -> str:
    """Poll on the bot's schedule until the task ends; its video URL, or the provider's reason."""
    started = time.monotonic()
    reporter.stage("queued", f"task {task_id}")
    while True:
        age = time.monotonic() - started
        if age >= patience:
            raise CliError(f"no video after {patience:g} s; task {task_id} may still finish")
        await asyncio.sleep(min(schedule.next_delay(age), patience - age))
        try:
            remote = await provider.fetch(task_id)
        except ProviderError as exc:
            if not exc.retryable:
                raise
            reporter.stage("waiting for the provider", REASONS.get(exc.reason, exc.reason))
            continue
        if remote.state is ProviderState.FAILED:
            reason = remote.error or remote.error_code or "no reason given"
            raise CliError(f"generation failed (task {task_id}): {reason}")
        if remote.state is ProviderState.SUCCEEDED:
            if not remote.video_url:
                raise CliError(f"task {task_id} finished without a video")
            return remote.video_url
        running = remote.state is ProviderState.RUNNING
        reporter.stage("generating" if running else "queued", f"task {task_id}")


def mode_for_new_files() -> int:
    """The permissions a new file gets under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


async def stream_to(url: str, path: Path, reporter: Reporter) -> None:
    """Download `url` into `path`, retrying dropped connections."""
    headers = {"User-Agent": USER_AGENT}
    async with httpx.AsyncClient(
        timeout=DOWNLOAD_TIMEOUT, headers=headers, follow_redirects=True
    ) as client:
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                await stream_once(client, url, path, reporter)
                return
            except httpx.TransportError:
                if attempt == DOWNLOAD_ATTEMPTS:
                    raise
                await asyncio.sleep(attempt)


async def stream_once(client: httpx.AsyncClient, url: str, path: Path, reporter: Reporter) -> None:
    """One streamed download into `path`."""
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        total = int(response.headers.get("content-length") or 0) or None
        done = 0
        with path.open("wb") as out:
            async for chunk in response.aiter_bytes(CHUNK):
                out.write(chunk)
                done += len(chunk)
                reporter.transfer(done, total)


def copy_local(url: str, path: Path, reporter: Reporter) -> None:
    """Copy a `file://` video (the preview backend's) into `path`."""
    source = Path(url2pathname(urlparse(url).path))
    shutil.copyfile(source, path)
    size = path.stat().st_size
    reporter.transfer(size, size)


def temporary_beside(out: Path) -> Path:
    """A new empty file in `out`'s folder, to be renamed to `out` when complete."""
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    return Path(name)


def put_in_place(partial: Path, out: Path) -> int:
    """Give the finished file ordinary permissions and rename it to `out`; its size."""
    partial.chmod(mode_for_new_files())
    partial.replace(out)
    return out.stat().st_size


async def save_video(url: str, out: Path, reporter: Reporter) -> int:
    """Write the video to a temporary file beside `out`, then rename it; its size in bytes."""
    reporter.stage("downloading")
    partial = temporary_beside(out)
    try:
        if url.startswith("file:"):
            copy_local(url, partial, reporter)
        else:
            await stream_to(url, partial, reporter)
        return put_in_place(partial, out)
    except httpx.HTTPStatusError as exc:
        raise CliError(f"download failed (HTTP {exc.response.status_code}): {url}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise CliError(f"download failed ({type(exc).__name__}): {url}") from None
    finally:
        remove(partial)


def remove(path: Path) -> None:
    """Delete a file if it is still there."""
    path.unlink(missing_ok=True)


@dataclass
class Job:
    """One generation and what is known about it so far."""

    settings: Settings
    spec: ModelSpec
    options: GenerateOptions
    output: Output
    external_id: str | None = None
    task_id: str | None = None

    def lost_create(self, exc: ProviderError) -> list[str]:
        """What to say when the create's answer was lost and the task could not be found."""
        if self.task_id is not None or not isinstance(exc, UncertainCreateError):
            return []
        return [
            f"the task may have been created anyway (our id {self.external_id}); "
            "it was not sent again, so it is not paid for twice"
        ]


async def generate(job: Job) -> int:
    """Create the task, wait for it and save the video; print the file's path."""
    providers = build_providers(job.settings, BuildContext(job.settings.data_directory))
    provider = providers[job.spec.backend]
    reporter = make_reporter()
    try:
        return await run_job(job, provider, reporter)
    except ProviderError as exc:
        reporter.close()
        suffix = f" (task {job.task_id})" if job.task_id else ""
        raise CliError(describe(job.spec.backend, exc) + suffix, *job.lost_create(exc)) from None
    except asyncio.CancelledError:
        reporter.close()
        if job.task_id:
            name = BACKEND_NAMES.get(job.spec.backend, job.spec.backend)
            print(f"{PROG}: task {job.task_id} goes on at {name}", file=sys.stderr)
        raise
    finally:
        reporter.close()
        await asyncio.gather(*(p.aclose() for p in providers.values()), return_exceptions=True)


async def run_job(job: Job, provider: Provider, reporter: Reporter) -> int:
    """The steps of `generate`, with a provider and a progress display."""
    request = build_request(job.spec, job.options, provider.image_types)
    job.external_id = request.external_id
    started = time.monotonic()
    job.task_id = await create_task(provider, request, reporter)
    timeout = job.options.timeout or job.settings.task_timeout
    name = kind(job.spec.id, request.mode, request.duration, request.sound)
    times = await learned_times(job.settings.database_path, name, job.settings.poll_interval)
    schedule = Schedule(times, job.settings.poll_interval)
    url = await wait_for_video(provider, job.task_id, schedule, timeout, reporter)
    out = job.output.path(job.options.image, job.task_id)
    size = await save_video(url, out, reporter)
    reporter.finish(f"saved {decimal(size)} in {time.monotonic() - started:.0f} s")
    print(out, flush=True)
    return OK


def run_generate(args: argparse.Namespace, masker: Masker) -> int:
    """`kling-bot generate`."""
    options = GenerateOptions.from_args(args)
    settings = load_settings(masker, need_bot=False)
    spec = choose_model(settings, options.model)
    if spec.multi_shot is None and not args.shots:
        options = replace(options, shots=())  # numbered lines are one prompt for this model
    problems = option_problems(spec, settings.catalogue(), options)
    if problems:
        raise UsageError(*problems)
    options, notes = with_defaults(spec, options)
    for note in notes:
        print(f"{PROG}: {note}", file=sys.stderr)
    output = output_of(options.out)
    quiet_logging(settings)
    return asyncio.run(generate(Job(settings, spec, options, output)))


# ---- check -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the check's table."""

    name: str
    ok: bool
    detail: str


def body_of(response: httpx.Response) -> dict[str, object]:
    """The response's JSON object, or an empty one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def host_of(url: str) -> str:
    """Where a URL goes, for people: its host and port, never a user name or password."""
    return urlparse(url).netloc.rpartition("@")[2] or "(no host)"


async def check_telegram(client: httpx.AsyncClient, settings: Settings, seconds: float) -> Row:
    """getMe with the token; neither the token nor the URL holding it is shown."""
    host = host_of(settings.telegram_api_url)
    try:
        response = await client.get(f"{settings.telegram_api_url}/bot{settings.token}/getMe")
    except httpx.TimeoutException:
        return Row("Telegram", False, f"{host} did not answer within {seconds:g} s")
    except httpx.HTTPError as exc:
        return Row("Telegram", False, f"{host} not reachable ({type(exc).__name__})")
    body = body_of(response)
    result = body.get("result")
    if response.is_success and body.get("ok") is True and isinstance(result, dict):
        return Row("Telegram", True, f"@{result.get('username')}")
    description = body.get("description") or f"HTTP {response.status_code}"
    hint = " (check TELEGRAM_BOT_TOKEN)" if response.status_code in (401, 404) else ""
    return Row("Telegram", False, f"{description}{hint}")


def backend_title(name: str) -> str:
    """A backend's name for the check's table."""
    return ROW_NAMES.get(name) or BACKEND_NAMES.get(name, name)


async def check_provider(name: str, provider: Provider, seconds: float) -> Row:
    """The provider's balance, which also proves the key works."""
    label = backend_title(name)
    try:
        return Row(label, True, await provider.balance())
    except NotImplementedError:
        return Row(label, True, "configured (no balance to show)")
    except ProviderTimeoutError as exc:  # not "may have started": a balance starts nothing
        return Row(label, False, f"no complete answer within {seconds:g} s: {exc.message}")
    except ProviderError as exc:
        return Row(label, False, f"{REASONS.get(exc.reason, 'error')}: {exc.message}")
    except Exception as exc:  # a check reports, it does not crash
        return Row(label, False, f"{type(exc).__name__}: {exc}")


async def check_public_url(client: httpx.AsyncClient, settings: Settings, seconds: float) -> Row:
    """Whether `<PUBLIC_URL>/healthz` answers; without PUBLIC_URL the bot polls."""
    if not settings.public_url:
        return Row("PUBLIC_URL", True, "not set: callbacks are off, the bot polls the providers")
    url = f"{settings.public_url}/healthz"
    hint = "is the bot running and is the URL public?"
    try:
        response = await client.get(url)
    except httpx.TimeoutException:
        return Row("PUBLIC_URL", False, f"{url} did not answer within {seconds:g} s; {hint}")
    except httpx.HTTPError as exc:
        return Row("PUBLIC_URL", False, f"{url} not reachable ({type(exc).__name__}); {hint}")
    if response.status_code != 200:
        return Row("PUBLIC_URL", False, f"{url} answered HTTP {response.status_code}; {hint}")
    return Row("PUBLIC_URL", True, f"{url} answers")


def models_row(settings: Settings) -> Row:
    """How many models are offered and which one new drafts use."""
    catalogue = settings.catalogue()
    default = catalogue.default(settings.default_model).id
    return Row("Models", True, f"{len(catalogue.models)} offered; new drafts use {default}")


class Waiting:
    """The network checks in flight: each is announced as it starts, the slow ones recalled."""

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._pending: list[str] = []

    async def on(self, what: str, host: str | None, check: Awaitable[Row]) -> Row:
        """Say what `check` asks of which host, then run it; a check without a host is silent."""
        if host is None:
            return await check
        say(self._masker, f"checking {what} at {host}…")
        self._pending.append(f"{what} at {host}")
        try:
            return await check
        finally:
            self._pending.remove(f"{what} at {host}")

    async def remind(self, every: float) -> None:
        """Every `every` seconds until cancelled, name the checks still waiting for an answer."""
        started = time.monotonic()
        while True:
            await asyncio.sleep(every)
            if self._pending:
                waited = time.monotonic() - started
                say(
                    self._masker,
                    f"still waiting for {', '.join(self._pending)} ({waited:.0f} s so far)",
                )


async def run_checks(settings: Settings, seconds: float, masker: Masker) -> list[Row]:
    """Every check, run at once; each says on stderr where it goes before it waits there."""
    timeout = httpx.Timeout(seconds, connect=min(seconds, CHECK_CONNECT_SECONDS))
    providers = build_providers(settings, BuildContext(settings.data_directory, timeout=timeout))
    headers = {"User-Agent": USER_AGENT}
    waiting = Waiting(masker)
    reminder = asyncio.create_task(waiting.remind(REMIND_EVERY))
    public = host_of(settings.public_url) if settings.public_url else None
    try:
        async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
            rows = await asyncio.gather(
                waiting.on(
                    "Telegram (getMe)",
                    host_of(settings.telegram_api_url),
                    check_telegram(client, settings, seconds),
                ),
                *(
                    waiting.on(
                        f"{backend_title(name)} (balance)",
                        host_of(root) if (root := api_root(settings, name)) else None,
                        check_provider(name, provider, seconds),
                    )
                    for name, provider in providers.items()
                ),
                waiting.on(
                    "PUBLIC_URL (/healthz)", public, check_public_url(client, settings, seconds)
                ),
            )
    finally:
        reminder.cancel()
        await asyncio.gather(*(p.aclose() for p in providers.values()), return_exceptions=True)
    return [*rows, models_row(settings)]


def print_rows(rows: Sequence[Row], masker: Masker) -> None:
    """A table on a terminal, aligned plain lines otherwise."""
    if sys.stdout.isatty():
        table = Table("", "check", "result")
        for row in rows:
            mark = "[green]ok[/green]" if row.ok else "[red]FAIL[/red]"
            table.add_row(mark, row.name, masker(row.detail))
        Console(highlight=False).print(table)
        return
    width = max(len(row.name) for row in rows)
    for row in rows:
        print(f"{'ok' if row.ok else 'FAIL':<4}  {row.name:<{width}}  {masker(row.detail)}")


def run_check(args: argparse.Namespace, masker: Masker) -> int:
    """`kling-bot check`."""
    settings = load_settings(masker, need_bot=True)
    choose_model(settings, None)  # an unoffered DEFAULT_MODEL stops the bot too
    quiet_logging(settings)
    rows = asyncio.run(run_checks(settings, args.timeout, masker))
    print_rows(rows, masker)
    failed = [row.name for row in rows if not row.ok]
    if failed:
        say(masker, f"check failed: {', '.join(failed)}")
        return FAILED
    return OK


# ---- parser and entry point ------------------------------------------------------------------


def add_generate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `generate` subcommand's arguments."""
    parser = commands.add_parser(
        "generate",
        help="make one video from a photo and a prompt",
        description="Make one video from a photo and a prompt with a configured backend, "
        "wait for it and save it. Exit status: 0 saved, 1 failed, 2 bad arguments or "
        "configuration (nothing paid), 130 interrupted.",
    )
    parser.add_argument("image", type=Path, metavar="IMAGE", help="the photo (JPEG, PNG, WebP)")
    parser.add_argument("prompt", metavar="PROMPT", help="what should happen in the video")
    parser.add_argument("--model", metavar="ID", help="model id (default: DEFAULT_MODEL)")
    parser.add_argument(
        "--duration", type=int, metavar="SECONDS", help="5 or 10; 3 to 15 on Kling 3.0 (default: 5)"
    )
    parser.add_argument(
        "--sound", action=argparse.BooleanOptionalAction, help="with sound (default: off)"
    )
    parser.add_argument(
        "--mode", metavar="MODE", help="std or pro; 4K (kie Kling 3.0); 720p or 1080p (3.0 Turbo)"
    )
    parser.add_argument(
        "--resolution",
        dest="mode",
        choices=("720p", "1080p"),
        help="Kling 3.0 Turbo's resolution (the same as --mode there)",
    )
    parser.add_argument(
        "--aspect",
        choices=("16:9", "9:16", "1:1"),
        help="the video's shape where the model takes one (default: the photo's nearest)",
    )
    parser.add_argument("--tail", type=Path, metavar="IMAGE", help="end frame")
    parser.add_argument(
        "--shots",
        action="store_true",
        help="each line of PROMPT is one shot (Kling 3.0; lines numbered 1. 2. … are anyway)",
    )
    parser.add_argument("--negative", metavar="TEXT", help="what the video should avoid")
    parser.add_argument("--cfg", type=unit_interval, metavar="0..1", help="cfg_scale")
    parser.add_argument("--camera", choices=sorted(PRESETS), metavar="PRESET", help="camera move")
    parser.add_argument("--static-mask", type=Path, metavar="PNG", help="area that stays still")
    parser.add_argument(
        "--dynamic-mask",
        type=mask_arg,
        action="append",
        metavar="PNG:x1,y1;x2,y2;...",
        help=f"area that moves along the path (pixels, origin bottom-left); up to "
        f"{MAX_DYNAMIC_MASKS}",
    )
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="where to save (default: <image>-<task>.mp4)"
    )
    parser.add_argument(
        "--timeout", type=positive, metavar="SECONDS", help="give up after (default: TASK_TIMEOUT)"
    )
    parser.epilog = f"camera presets: {', '.join(PRESETS)}"
    parser.set_defaults(handler=run_generate)


def package_version() -> str:
    """The installed package's version (pyproject's); the source's own when not installed."""
    try:
        return importlib.metadata.version("kling-bot")
    except importlib.metadata.PackageNotFoundError:
        return __version__


def build_parser() -> argparse.ArgumentParser:
    """The `kling-bot` command line."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Kling videos from the command line, with the bot's configuration "
        "(environment and .env). Without a command, kling-bot runs the Telegram bot.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {package_version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    add_generate(commands)
    check = commands.add_parser(
        "check",
        help="test the configuration: Telegram, each backend, PUBLIC_URL",
        description="Test the configuration: the bot token, each backend's key and balance, "
        "and PUBLIC_URL. Exit status: 0 all ok, 1 something failed, 2 configuration errors.",
    )
    check.add_argument(
        "--timeout",
        type=positive,
        default=CHECK_SECONDS,
        metavar="SECONDS",
        help=f"give up on a server that has not answered after this long (default: "
        f"{CHECK_SECONDS:g})",
    )
    check.set_defaults(handler=run_check)
    return parser


Handler = Callable[[argparse.Namespace, Masker], int]


def main(argv: list[str]) -> int:
    """Run a subcommand; 0 ok, 1 failed, 2 usage or configuration error, 130 interrupted."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or argparse's usage message
        return exc.code if isinstance(exc.code, int) else USAGE
    handler: Handler = args.handler
    masker = Masker()
    try:
        return handler(args, masker)
    except CliError as exc:
        for line in exc.lines:
            say(masker, line)
        return exc.status
    except KeyboardInterrupt:
        say(masker, "interrupted")
        return INTERRUPTED
