"""`kling-bot generate`: one video from a photo and a prompt, saved to a file."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
from rich.filesize import decimal

from bot.cli.common import (
    OK,
    PROG,
    CliError,
    Masker,
    UsageError,
    choose_model,
    positive,
    quiet_logging,
    settings_for,
)
from bot.cli.display import Display, make_display
from bot.cli.options import (
    GenerateOptions,
    Output,
    mask_arg,
    option_problems,
    output_of,
    unit_interval,
    with_defaults,
)
from bot.config import Settings
from bot.core.generation import Generation
from bot.core.images import LONGEST, SMALLEST, ImageError, prepare_image
from bot.core.paid import UncertainCreateError
from bot.core.request import Choices, Images, RequestRefused, build_request
from bot.core.waiting import GenerationFailed, OutOfPatience
from bot.engine.timing import Schedule, kind, learned_times
from bot.providers.backend import BuildContext
from bot.providers.base import MAX_DYNAMIC_MASKS, DynamicMask, ImageFile, Provider, VideoRequest
from bot.providers.camera import PRESETS
from bot.providers.catalogue import ModelSpec
from bot.providers.errors import ProviderError
from bot.providers.registry import BACKEND_NAMES, build_providers


def read_image(path: Path, accepted: tuple[str, ...], what: str) -> ImageFile:
    """The image at `path`, checked and made acceptable; UsageError if it cannot be used."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    try:
        return prepare_image(data, accepted, what.replace(" ", "-"))
    except ImageError as exc:
        reason = exc.reason.summary.format(smallest=SMALLEST, longest=LONGEST)
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


def request_of(
    spec: ModelSpec, options: GenerateOptions, accepted: tuple[str, ...]
) -> VideoRequest:
    """Read the images and make the request (external id `cli-<hex>`); UsageError if refused."""
    photo = read_image(options.image, accepted, "image")
    tail = read_image(options.tail, accepted, "end frame") if options.tail else None
    static = None
    if options.static_mask is not None:
        static = read_mask(options.static_mask, accepted, photo, "static mask")
    dynamic = tuple(
        DynamicMask(
            mask=read_mask(mask.path, accepted, photo, f"dynamic mask {n}"),
            trajectories=mask.points,
        )
        for n, mask in enumerate(options.dynamic_masks, 1)
    )
    duration = options.duration or spec.durations[0]
    choices = Choices(
        prompt=options.prompt,
        duration=duration,
        mode=(options.mode or spec.modes[0]) if spec.modes else None,
        sound=bool(options.sound),
        negative_prompt=options.negative,
        cfg_scale=options.cfg,
        camera=options.camera,
        shots=options.shots,
        aspect=options.aspect,
    )
    images = Images(photo=photo, end_frame=tail, static_mask=static, dynamic_masks=dynamic)
    try:
        return build_request(spec, choices, images, external_id=f"cli-{uuid.uuid4().hex}")
    except RequestRefused as exc:
        raise UsageError(exc.detail) from None


def describe(backend: str, exc: ProviderError) -> str:
    """A provider error in plain words, with the provider's own message."""
    name = BACKEND_NAMES.get(backend, backend)
    return f"{name}: {exc.reason.summary}: {exc.message}"


@dataclass
class Job:
    """One `generate` run: what was asked, and the generation once it began."""

    settings: Settings
    spec: ModelSpec
    options: GenerateOptions
    output: Output
    generation: Generation | None = None

    @property
    def task_id(self) -> str | None:
        """The provider's task, once created."""
        return self.generation.task_id if self.generation else None

    def lost_create(self, exc: ProviderError) -> list[str]:
        """What to say when the create's answer was lost and the task could not be found."""
        if self.task_id is not None or not isinstance(exc, UncertainCreateError):
            return []
        assert self.generation is not None
        ours = self.generation.request.external_id
        return [
            f"the task may have been created anyway (our id {ours}); "
            "it was not sent again, so it is not paid for twice"
        ]


async def generate(job: Job) -> int:
    """Create the task, wait for it and save the video; print the file's path."""
    providers = build_providers(job.settings, BuildContext(job.settings.data_directory))
    provider = providers[job.spec.backend]
    display = make_display()
    try:
        return await run_job(job, provider, display)
    except ProviderError as exc:
        display.close()
        suffix = f" (task {job.task_id})" if job.task_id else ""
        raise CliError(describe(job.spec.backend, exc) + suffix, *job.lost_create(exc)) from None
    except asyncio.CancelledError:
        display.close()
        if job.task_id:
            name = BACKEND_NAMES.get(job.spec.backend, job.spec.backend)
            print(f"{PROG}: task {job.task_id} goes on at {name}", file=sys.stderr)
        raise
    finally:
        display.close()
        await asyncio.gather(*(p.aclose() for p in providers.values()), return_exceptions=True)


async def run_job(job: Job, provider: Provider, display: Display) -> int:
    """The steps of `generate` over the generation core, shown on `display`."""
    request = request_of(job.spec, job.options, provider.image_types)
    generation = job.generation = Generation(provider, request, display)
    started = time.monotonic()
    task_id = await generation.start()
    patience = job.options.timeout or job.settings.task_timeout
    name = kind(job.spec.id, request.mode, request.duration, request.sound)
    # With DATABASE_URL the SQLite file at DATABASE_PATH is not the bot's: defaults then.
    sqlite = None if job.settings.database else job.settings.database_path
    times = await learned_times(sqlite, name, job.settings.poll_interval)
    try:
        url = await generation.wait(Schedule(times, job.settings.poll_interval), patience)
    except GenerationFailed as exc:
        raise CliError(f"generation failed (task {task_id}): {exc.detail}") from None
    except OutOfPatience:
        raise CliError(f"no video after {patience:g} s; task {task_id} may still finish") from None
    out = job.output.path(job.options.image, task_id)
    try:
        size = await generation.save(url, out)
    except httpx.HTTPStatusError as exc:
        raise CliError(f"download failed (HTTP {exc.response.status_code}): {url}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise CliError(f"download failed ({type(exc).__name__}): {url}") from None
    display.finish(f"saved {decimal(size)} in {time.monotonic() - started:.0f} s")
    print(out, flush=True)
    return OK


def run_generate(args: argparse.Namespace, masker: Masker) -> int:
    """`kling-bot generate`."""
    options = GenerateOptions.from_args(args)
    settings = settings_for(masker, need_bot=False)
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
