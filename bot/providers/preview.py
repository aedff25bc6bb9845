"""A free, offline backend: the photo becomes a short Ken Burns video rendered with PyAV."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps
from pydantic import Field

from bot.providers.backend import Backend, BuildContext, SettingsSection
from bot.providers.base import (
    CameraMove,
    PreparedTask,
    Provider,
    ProviderState,
    ProviderTask,
    VideoRequest,
)
from bot.providers.catalogue import ANYWHERE, ModelSpec
from bot.providers.errors import (
    CallbackRejectedError,
    InvalidRequestError,
    NotFoundError,
    ServiceUnavailableError,
)
from bot.providers.extras import PREVIEW as PYAV

log = logging.getLogger(__name__)

TASK_ID = re.compile(r"pv-[0-9a-f]{32}")
MAX_DURATION = 30
DEFAULT_AMOUNT = 5
ZOOM_PER_STEP = 0.03  # per unit of a camera amount: the default 5 zooms 1.0 -> 1.15
PRESET_ZOOM = 1.2
_FORMATS = ("JPEG", "PNG", "WEBP")
# Files outlive the tracker's 24 h late-delivery window, then go; swept at most hourly.
KEEP_SECONDS = 2 * 24 * 3600.0
SWEEP_EVERY = 3600.0
_X264 = {"preset": "veryfast", "crf": "23"}
# Burned into every frame, as the README promises: a preview must never pass for an AI video.
# Pillow's default font (Aileron) has no dashes: a middle dot separates the words.
LABEL = "PREVIEW · NOT AI"
BAND = 0.1  # the band's height, of the frame's shorter side
TEXT = 0.5  # the letters' height, of the band's
SHADE = 160  # how much the band darkens the picture under it (of 255)
# AVCOL_SPC/PRI/TRC_BT709 are all 1: frames get the BT.709 matrix and say so, as HD players expect.
_BT709 = 1


class RenderStopped(Exception):
    """The render was stopped before it finished."""


@dataclass(frozen=True)
class Motion:
    """A crop window's path: zoom at start and end, centre offsets in -1…1 of the free margin."""

    zoom: tuple[float, float]
    x: tuple[float, float] = (0.0, 0.0)
    y: tuple[float, float] = (0.0, 0.0)

    @property
    def peak(self) -> float:
        """The strongest zoom on the way."""
        return max(self.zoom)

    def window(self, width: int, height: int, progress: float) -> tuple[float, float, float, float]:
        """The crop box at `progress` (0…1) of the path in a width×height source."""
        start, end = self.zoom
        zoom = start * (end / start) ** progress  # geometric: the zoom looks steady
        left, right = _span(width, zoom, _lerp(self.x, progress))
        top, bottom = _span(height, zoom, _lerp(self.y, progress))
        return left, top, right, bottom


def _lerp(path: tuple[float, float], progress: float) -> float:
    return path[0] + (path[1] - path[0]) * progress


def _span(length: int, zoom: float, offset: float) -> tuple[float, float]:
    """Start and end of the crop along one side."""
    size = length / zoom
    start = (length - size) * (1 + offset) / 2
    start = min(max(start, 0.0), length - size)
    return start, start + size


def _ease(t: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * t)


def _zoom(amount: int) -> Motion:
    """Zoom in for a negative amount, out for a positive one (Kling's sign)."""
    peak = 1 + ZOOM_PER_STEP * abs(amount)
    return Motion(zoom=(1.0, peak) if amount < 0 else (peak, 1.0))


def _slide(amount: int, *, vertical: bool) -> Motion:
    """Move the window right (or down) for a positive amount, the other way for a negative."""
    peak = 1 + ZOOM_PER_STEP * abs(amount)
    path = (-1.0, 1.0) if amount > 0 else (1.0, -1.0)
    return Motion(zoom=(peak, peak), y=path) if vertical else Motion(zoom=(peak, peak), x=path)


# The offset grows with the zoom (or shrinks with it) so the window never doubles back.
_PRESETS: dict[str, Motion] = {
    "down_back": Motion(zoom=(PRESET_ZOOM, 1.0), y=(-1.0, 0.0)),
    "forward_up": Motion(zoom=(1.0, PRESET_ZOOM), y=(0.0, -1.0)),
    "right_turn_forward": Motion(zoom=(1.0, PRESET_ZOOM), x=(0.0, 1.0)),
    "left_turn_forward": Motion(zoom=(1.0, PRESET_ZOOM), x=(0.0, -1.0)),
}


def motion_for(camera: CameraMove | None) -> Motion:
    """The crop path that imitates a camera move; a slow zoom in by default."""
    if camera is None:
        return _zoom(-DEFAULT_AMOUNT)
    if camera.type != "simple":
        return _PRESETS[camera.type]
    if camera.axis in ("pan", "horizontal"):
        return _slide(camera.amount, vertical=False)
    if camera.axis in ("tilt", "vertical"):
        return _slide(-camera.amount, vertical=True)  # tilt > 0 looks up: the window rises
    if camera.axis == "zoom":
        return _zoom(camera.amount)
    return _zoom(-abs(camera.amount))  # a roll cannot be faked with a crop


def fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Even dimensions with the image's aspect, the longest side at most `max_side`."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _decode(image: bytes, side: int) -> Image.Image:
    """The photo as RGB, upright; JPEGs decoded at a reduced scale when that is enough."""
    try:
        with Image.open(io.BytesIO(image), formats=_FORMATS) as opened:
            opened.draft("RGB", (side, side))
            return ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError("the photo could not be decoded") from exc


def label_box(width: int, height: int) -> tuple[int, int, int, int]:
    """Where the label's band lies in a width×height frame: along the bottom edge."""
    return 0, height - max(8, round(min(width, height) * BAND)), width, height


def _glyphs(height: int, width: int) -> Image.Image:
    """LABEL in white on black, its capitals about `height` px tall, at most `width` px wide."""
    font = ImageFont.load_default(100)
    if isinstance(font, ImageFont.FreeTypeFont):
        left, top, right, bottom = font.getbbox(LABEL)
        scale = min(height / (bottom - top), width / (right - left))
        font = ImageFont.load_default(max(1, int(100 * scale)))
    left, top, right, bottom = (round(edge) for edge in font.getbbox(LABEL))
    drawn = Image.new("L", (right - left, bottom - top))
    ImageDraw.Draw(drawn).text((-left, -top), LABEL, fill=255, font=font)
    glyphs = drawn.crop(drawn.getbbox() or (0, 0, drawn.width, drawn.height))
    # Pillow without FreeType has one small bitmap font: enlarged by whole pixels, it stays crisp.
    times = max(1, min(round(height / glyphs.height), width // glyphs.width))
    return glyphs.resize((glyphs.width * times, glyphs.height * times), Image.Resampling.NEAREST)


@dataclass(frozen=True)
class Label:
    """The band with LABEL, made once per render and pasted onto every frame."""

    corner: tuple[int, int]
    picture: Image.Image
    mask: Image.Image

    @classmethod
    def for_frame(cls, width: int, height: int) -> Label:
        """The label for width×height frames."""
        left, top, right, bottom = label_box(width, height)
        band = (right - left, bottom - top)
        glyphs = _glyphs(max(1, round(band[1] * TEXT)), max(1, round(band[0] * 0.9)))
        letters = Image.new("L", band)
        letters.paste(glyphs, ((band[0] - glyphs.width) // 2, (band[1] - glyphs.height) // 2))
        # Black shade under white letters: the letters opaque, the picture darkened around them.
        mask = ImageChops.lighter(Image.new("L", band, SHADE), letters)
        return cls((left, top), Image.merge("RGB", (letters, letters, letters)), mask)

    def burn(self, frame: Image.Image) -> Image.Image:
        """The frame with the label on it (changed in place)."""
        frame.paste(self.picture, self.corner, self.mask)
        return frame


def _frames(
    source: Image.Image, size: tuple[int, int], motion: Motion, count: int
) -> Iterator[Image.Image]:
    label = Label.for_frame(*size)
    for index in range(count):
        box = motion.window(source.width, source.height, _ease(index / max(1, count - 1)))
        yield label.burn(source.resize(size, Image.Resampling.BILINEAR, box=box))


def _encode(
    frames: Iterator[Image.Image],
    path: Path,
    size: tuple[int, int],
    fps: int,
    stop: threading.Event | None,
) -> None:
    # PyAV loads only when a preview is rendered: the bot without the preview never pays for it.
    import av
    from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

    width, height = size
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps, options=_X264)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        context = stream.codec_context
        context.gop_size = 2 * fps  # a keyframe every 2 s keeps seeking quick
        context.colorspace = context.color_primaries = context.color_trc = _BT709
        context.color_range = ColorRange.MPEG
        rgb = av.VideoFrame(width, height, "rgb24")
        reformatter = VideoReformatter()
        for index, picture in enumerate(frames):
            if stop is not None and stop.is_set():
                raise RenderStopped("the render was stopped")
            rgb.set_image(picture)  # type: ignore[attr-defined]  # public, missing from the stubs
            frame = reformatter.reformat(
                rgb,
                format="yuv420p",
                dst_colorspace=Colorspace.ITU709,
                dst_color_range=ColorRange.MPEG,
            )
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def render_preview(
    image: bytes,
    out: Path,
    *,
    duration: int,
    camera: CameraMove | None = None,
    fps: int = 24,
    max_side: int = 720,
    stop: threading.Event | None = None,
) -> None:
    """Render `image` as a silent `duration`-second H.264 MP4 at `out`, labelled, atomically."""
    if duration < 1 or fps < 1 or max_side < 2:
        raise ValueError("duration and fps must be positive, max_side at least 2")
    motion = motion_for(camera)
    picture = _decode(image, math.ceil(max_side * motion.peak))
    size = fit(picture.width, picture.height, max_side)
    scaled = (round(size[0] * motion.peak), round(size[1] * motion.peak))
    # At the strongest zoom the crop is pixel for pixel; elsewhere a mild bilinear shrink.
    source = picture.resize(scaled, Image.Resampling.LANCZOS)
    part = out.with_name(f".{out.name}.{uuid.uuid4().hex}.part")
    try:
        _encode(_frames(source, size, motion, duration * fps), part, size, fps, stop)
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)


def _write(path: Path, data: bytes) -> None:
    """Write a file whole or not at all."""
    part = path.with_name(f".{path.name}.part")
    part.write_bytes(data)
    os.replace(part, path)


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


class PreviewProvider(Provider):
    """An offline backend for trying the bot: the photo slowly zoomed or panned, made here."""

    name = "preview"
    sends_callbacks = False

    def __init__(
        self, directory: Path, *, fps: int = 24, max_side: int = 720, parallel: int = 1
    ) -> None:
        # Made with the first job: building the provider (`kling-bot check`) writes nothing.
        self._directory = directory.resolve()
        self._fps = fps
        self._max_side = max_side
        self._slots = asyncio.Semaphore(parallel)  # the host has few cores; renders take turns
        self._renders: dict[str, asyncio.Task[None]] = {}
        self._queued: set[str] = set()
        self._errors: dict[str, str] = {}
        self._stop = threading.Event()
        self._swept_at = -math.inf

    @property
    def local_roots(self) -> tuple[Path, ...]:
        """Its `file://` results live here: the deliverer reads only below this folder."""
        return (self._directory,)

    def output_directory(self) -> Path:
        """The folder the videos are written to."""
        return self._directory

    def _file(self, task_id: str, suffix: str) -> Path:
        if not TASK_ID.fullmatch(task_id):
            raise NotFoundError(f"not a preview task id: {task_id!r}")
        return self._directory / f"{task_id}{suffix}"

    async def prepare(self, request: VideoRequest) -> PreparedTask:
        """Keep what the render needs: the photo, the length and the camera move."""
        if not 1 <= request.duration <= MAX_DURATION:
            raise InvalidRequestError(f"a preview lasts 1 to {MAX_DURATION} seconds")
        camera = request.camera.model_dump() if request.camera else None
        payload = {"image": request.image.data, "duration": request.duration, "camera": camera}
        return PreparedTask(route="render", payload=payload)

    async def start(self, prepared: PreparedTask) -> str:
        """Save the job (so a restart can finish it), then render it in the background."""
        if self._stop.is_set():
            raise ServiceUnavailableError("the preview backend is closed")
        payload = prepared.payload
        task_id = f"pv-{uuid.uuid4().hex}"
        job = {"duration": payload["duration"], "camera": payload["camera"]}
        await asyncio.to_thread(self._save, task_id, payload["image"], job)
        self._launch(task_id)
        if time.monotonic() - self._swept_at >= SWEEP_EVERY:
            self._swept_at = time.monotonic()
            try:
                await asyncio.to_thread(self._sweep, time.time() - KEEP_SECONDS)
            except OSError as exc:  # the job is started; cleaning up can wait for the next one
                log.warning("preview: could not sweep old files: %s", exc)
        return task_id

    def _sweep(self, before: float) -> None:
        """Delete the files of jobs last touched before `before`: nobody will fetch them."""
        removed = 0
        for path in self._directory.iterdir():
            with contextlib.suppress(OSError):  # gone already, or not ours to delete
                if path.is_file() and path.stat().st_mtime < before:
                    path.unlink()
                    removed += 1
        if removed:
            log.info("preview: removed %d old files", removed)

    def _save(self, task_id: str, image: bytes, job: dict[str, Any]) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        # The input goes last: its presence means the job is complete on disk.
        _write(self._file(task_id, ".json"), json.dumps(job).encode())
        _write(self._file(task_id, ".input"), image)

    def _launch(self, task_id: str) -> None:
        if self._slots.locked():
            self._queued.add(task_id)
        render = asyncio.create_task(self._render(task_id), name=f"preview {task_id}")
        self._renders[task_id] = render
        render.add_done_callback(functools.partial(self._finished, task_id))

    async def _render(self, task_id: str) -> None:
        async with self._slots:
            self._queued.discard(task_id)
            if not self._stop.is_set():
                await asyncio.to_thread(self._render_job, task_id)

    def _render_job(self, task_id: str) -> None:
        job = json.loads(self._file(task_id, ".json").read_text())
        camera = job.get("camera")
        render_preview(
            self._file(task_id, ".input").read_bytes(),
            self._file(task_id, ".mp4"),
            duration=int(job["duration"]),
            camera=None if camera is None else CameraMove.model_validate(camera),
            fps=self._fps,
            max_side=self._max_side,
            stop=self._stop,
        )

    def _finished(self, task_id: str, render: asyncio.Task[None]) -> None:
        self._renders.pop(task_id, None)
        self._queued.discard(task_id)
        error = None if render.cancelled() else render.exception()
        if error is not None and not isinstance(error, RenderStopped):
            self._errors[task_id] = _describe(error)
            log.warning("preview %s failed: %s", task_id, _describe(error))

    async def fetch(self, task_id: str) -> ProviderTask:
        """The render's state; a job a restart interrupted is rendered again."""
        video = self._file(task_id, ".mp4")
        if task_id in self._renders:
            queued = task_id in self._queued
            state = ProviderState.QUEUED if queued else ProviderState.RUNNING
            return ProviderTask(id=task_id, state=state)
        if await asyncio.to_thread(video.exists):
            url = video.as_uri()
            took = await asyncio.to_thread(self._took, task_id)
            return ProviderTask(id=task_id, state=ProviderState.SUCCEEDED, video_url=url, took=took)
        if task_id in self._errors:
            error = self._errors[task_id]
            return ProviderTask(id=task_id, state=ProviderState.FAILED, error=error)
        if not await asyncio.to_thread(self._file(task_id, ".input").exists):
            raise NotFoundError(f"no preview task {task_id}")
        if self._stop.is_set():
            raise ServiceUnavailableError("the preview backend is closed")
        self._launch(task_id)
        return ProviderTask(id=task_id, state=ProviderState.RUNNING)

    def _took(self, task_id: str) -> float | None:
        """Seconds from the job's start (its saved description) to the finished video."""
        try:
            begun = self._file(task_id, ".json").stat().st_mtime
            ended = self._file(task_id, ".mp4").stat().st_mtime
        except OSError:
            return None
        return ended - begun if ended > begun else None

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> str:
        """Refuse: the preview backend sends no callbacks."""
        raise CallbackRejectedError("the preview backend sends no callbacks")

    async def balance(self) -> str:
        """Previews cost nothing."""
        return "free"

    async def aclose(self) -> None:
        """Stop the renders in flight and wait until their threads have ended."""
        self._stop.set()
        renders = list(self._renders.values())
        if renders:
            await asyncio.gather(*renders, return_exceptions=True)


class PreviewSettings(SettingsSection):
    """PREVIEW_BACKEND: true offers the free preview beside paid models, false never."""

    # None: on exactly when no paid backend is configured.
    preview_backend: bool | None = Field(default=None)


MODEL = ModelSpec(
    backend="preview",
    name="zoom",
    label="Free preview",
    code="pv",
    prompt_max=5000,
    camera=ANYWHERE,
)


def _build(settings: PreviewSettings, context: BuildContext) -> Provider:
    return PreviewProvider(context.data_directory / "preview")


def _enabled(settings: PreviewSettings) -> bool | None:
    # Left unset, it is on only where PyAV is installed (the [preview] extra).
    if settings.preview_backend is None and not PYAV.installed():
        return False
    return settings.preview_backend


def _problems(settings: PreviewSettings) -> list[str]:
    if settings.preview_backend and not PYAV.installed():
        return [PYAV.needed_by("PREVIEW_BACKEND=true")]
    return []


BACKEND = Backend(
    name="preview",
    title="no AI",
    settings=PreviewSettings,
    models=(MODEL,),
    build=_build,
    enabled=_enabled,
    paid=False,
    problems=_problems,
    hint="PREVIEW_BACKEND=true for the free preview"
    + ("" if PYAV.installed() else ', after pip install ".[preview]"'),
)
