"""The offline preview backend: real H.264 renders and the provider's task life cycle."""

from __future__ import annotations

import asyncio
import io
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import av
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageStat

from bot.providers.base import (
    CameraMove,
    ImageFile,
    ProviderState,
    ProviderTask,
    VideoRequest,
)
from bot.providers.camera import PRESETS
from bot.providers.errors import (
    CallbackRejectedError,
    InvalidRequestError,
    NotFoundError,
    ServiceUnavailableError,
)
from bot.providers.preview import (
    TASK_ID,
    Label,
    PreviewProvider,
    RenderStopped,
    label_box,
    render_preview,
)

FAST = {"fps": 8, "max_side": 160}


def photo(width: int = 400, height: int = 300, fmt: str = "JPEG") -> bytes:
    """A dark picture with one bright marker left of centre and above the middle."""
    image = Image.new("RGB", (width, height), (40, 40, 40))
    draw = ImageDraw.Draw(image)
    draw.rectangle(
        (width * 0.30, height * 0.27, width * 0.375, height * 0.37), fill=(255, 255, 255)
    )
    for x in range(0, width, 20):  # texture, so every frame has something to encode
        draw.line((x, 0, x, height), fill=(60, 80, 60))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


@dataclass
class Video:
    """What a decoder sees in an MP4."""

    codec: str
    pix_fmt: str
    width: int
    height: int
    frames: int
    duration: float
    audio: int
    first: Image.Image
    last: Image.Image


def read_video(path: Path) -> Video:
    """Decode every frame, keeping only the first and the last."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        first = last = None
        count = 0
        for frame in container.decode(stream):
            last = frame.to_image()
            first = first or last
            count += 1
        assert first is not None and last is not None and container.duration is not None
        return Video(
            codec=stream.codec_context.name,
            pix_fmt=stream.codec_context.pix_fmt,
            width=stream.width,
            height=stream.height,
            frames=count,
            duration=container.duration / av.time_base,
            audio=len(container.streams.audio),
            first=first,
            last=last,
        )


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two frames' grey levels."""
    return float(ImageStat.Stat(ImageChops.difference(a.convert("L"), b.convert("L"))).mean[0])


def marker(frame: Image.Image) -> tuple[float, float, int]:
    """The bright marker's centre and width in a frame, above the label's band."""
    above = frame.crop((0, 0, frame.width, label_box(*frame.size)[1]))
    box = above.convert("L").point(lambda v: 255 if v > 200 else 0).getbbox()
    assert box is not None, "the marker left the frame"
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0]


def test_render_at_defaults_is_streamable_h264(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    render_preview(photo(1280, 720), out, duration=5)
    video = read_video(out)
    assert (video.codec, video.pix_fmt) == ("h264", "yuv420p")
    assert video.width % 2 == 0 and video.height % 2 == 0
    assert max(video.width, video.height) <= 720
    assert video.width / video.height == pytest.approx(1280 / 720, rel=0.01)
    assert video.frames == 5 * 24
    assert abs(video.duration - 5) <= 0.15
    assert video.audio == 0
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "faststart puts the index first"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def grey(width: int, height: int) -> bytes:
    """A flat mid-grey photo: whatever is not grey in a frame was drawn on it."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (128, 128, 128)).save(out, "PNG")
    return out.getvalue()


def assert_labelled(frame: Image.Image) -> None:
    """The picture untouched above the band; in it, a dark shade and white letters across."""
    left, top, right, bottom = label_box(*frame.size)
    assert bottom - top >= 0.09 * min(frame.size)
    light = frame.convert("L")
    above = ImageStat.Stat(light.crop((0, 0, frame.width, top)))
    assert abs(above.mean[0] - 128) < 3 and above.stddev[0] < 3
    band = light.crop((left, top, right, bottom))
    assert ImageStat.Stat(band).median[0] < 60, "the picture is shaded under the label"
    letters = band.point(lambda v: 255 if v > 200 else 0)
    share = ImageStat.Stat(letters).mean[0] / 255
    assert 0.01 < share < 0.4, share
    box = letters.getbbox()
    assert box is not None
    assert box[2] - box[0] > 0.2 * frame.width, "words, not a speck"
    assert abs((box[0] + box[2]) / 2 - frame.width / 2) < 0.05 * frame.width, "centred"
    assert box[3] - box[1] > 0.4 * (bottom - top), "letters tall enough to read"


@pytest.mark.parametrize("size", [(1280, 720), (720, 1280), (400, 300)])
def test_every_frame_says_preview_not_ai(tmp_path: Path, size: tuple[int, int]) -> None:
    out = tmp_path / "clip.mp4"
    render_preview(grey(*size), out, duration=1)
    with av.open(str(out)) as container:
        frames = [frame.to_image() for frame in container.decode(video=0)]
    assert len(frames) == 24
    for frame in frames:
        assert_labelled(frame)


def test_the_label_is_drawn_without_freetype_too(monkeypatch: pytest.MonkeyPatch) -> None:
    bitmap = ImageFont.load_default_imagefont()
    monkeypatch.setattr(ImageFont, "load_default", lambda size=None: bitmap)
    frame = Image.new("RGB", (720, 404), (128, 128, 128))
    assert_labelled(Label.for_frame(*frame.size).burn(frame))


@pytest.mark.parametrize("duration", [5, 10])
def test_frame_count_and_duration(tmp_path: Path, duration: int) -> None:
    out = tmp_path / "clip.mp4"
    render_preview(photo(), out, duration=duration, **FAST)
    video = read_video(out)
    assert video.frames == 8 * duration
    assert abs(video.duration - duration) <= 0.15
    assert difference(video.first, video.last) > 2, "the picture moves"


def test_portrait_keeps_its_aspect(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    render_preview(photo(300, 500, "PNG"), out, duration=1, **FAST)
    video = read_video(out)
    assert (video.width, video.height) == (96, 160)


CAMERAS = [
    *PRESETS.values(),
    CameraMove(type="simple", axis="roll", amount=4),
    CameraMove(type="simple", axis="horizontal", amount=-3),
    CameraMove(type="simple", axis="vertical", amount=10),
]


@pytest.mark.parametrize("camera", CAMERAS, ids=lambda c: f"{c.type}-{c.axis}-{c.amount}")
def test_every_camera_move_renders(tmp_path: Path, camera: CameraMove) -> None:
    out = tmp_path / "clip.mp4"
    render_preview(photo(fmt="WEBP"), out, duration=2, camera=camera, **FAST)
    video = read_video(out)
    assert video.frames == 16
    assert difference(video.first, video.last) > 1


def _marker_path(tmp_path: Path, camera: CameraMove) -> tuple[tuple[float, float, int], ...]:
    out = tmp_path / f"{camera.axis}{camera.amount}.mp4"
    render_preview(photo(), out, duration=2, camera=camera, **FAST)
    video = read_video(out)
    return marker(video.first), marker(video.last)


def test_pans_move_the_picture_the_right_way(tmp_path: Path) -> None:
    left = _marker_path(tmp_path, CameraMove(type="simple", axis="pan", amount=-5))
    right = _marker_path(tmp_path, CameraMove(type="simple", axis="pan", amount=5))
    # The view turns left, so what is in it slides right; and the other way round.
    assert left[1][0] - left[0][0] > 10
    assert right[1][0] - right[0][0] < -10


def test_tilts_and_zooms_move_the_picture_the_right_way(tmp_path: Path) -> None:
    up = _marker_path(tmp_path, CameraMove(type="simple", axis="tilt", amount=5))
    down = _marker_path(tmp_path, CameraMove(type="simple", axis="tilt", amount=-5))
    assert up[1][1] - up[0][1] > 5
    assert down[1][1] - down[0][1] < -5
    zoom_in = _marker_path(tmp_path, CameraMove(type="simple", axis="zoom", amount=-5))
    zoom_out = _marker_path(tmp_path, CameraMove(type="simple", axis="zoom", amount=5))
    assert zoom_in[1][2] > zoom_in[0][2]
    assert zoom_out[1][2] < zoom_out[0][2]


def test_a_stopped_render_leaves_nothing(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(RenderStopped):
        render_preview(photo(), tmp_path / "clip.mp4", duration=5, stop=stop, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_broken_bytes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="could not be decoded"):
        render_preview(b"not a picture", tmp_path / "clip.mp4", duration=1)
    assert list(tmp_path.iterdir()) == []


# The provider.


def request(data: bytes | None = None, duration: int = 5, camera: CameraMove | None = None):
    """A preview request for `data` (a real photo by default)."""
    image = ImageFile(
        data=photo() if data is None else data,
        mime_type="image/jpeg",
        file_name="photo.jpg",
        width=400,
        height=300,
    )
    return VideoRequest(
        model="preview",
        prompt="a calm scene",
        image=image,
        duration=duration,
        camera=camera,
        external_id="t-1",
    )


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[PreviewProvider]:
    backend = PreviewProvider(tmp_path / "previews", **FAST)
    yield backend
    await backend.aclose()


async def finish(provider: PreviewProvider, task_id: str, limit: float = 10.0) -> ProviderTask:
    """Poll until the task is done, for at most `limit` seconds."""
    deadline = time.monotonic() + limit
    while True:
        task = await provider.fetch(task_id)
        if task.state in (ProviderState.SUCCEEDED, ProviderState.FAILED):
            return task
        assert time.monotonic() < deadline, f"{task_id} still {task.state}"
        await asyncio.sleep(0.02)


def local_file(provider: PreviewProvider, task: ProviderTask) -> Path:
    """The file a SUCCEEDED task's URL names, checked to be in the output folder."""
    assert task.video_url is not None and task.video_url.startswith("file://")
    path = Path(url2pathname(urlsplit(task.video_url).path))
    assert path.is_relative_to(provider.output_directory())
    assert path.is_file()
    return path


async def test_the_folder_is_made_by_the_first_job_not_by_the_provider(tmp_path: Path) -> None:
    backend = PreviewProvider(tmp_path / "data" / "previews", **FAST)
    try:
        assert list(tmp_path.iterdir()) == []  # `kling-bot check` builds it and writes nothing
        with pytest.raises(NotFoundError):
            await backend.fetch("pv-" + "0" * 32)
        task_id = await backend.create(request(duration=1))
        assert (await finish(backend, task_id)).state is ProviderState.SUCCEEDED
    finally:
        await backend.aclose()


async def test_create_runs_then_succeeds(provider: PreviewProvider) -> None:
    camera = CameraMove(type="simple", axis="pan", amount=3)
    task_id = await provider.create(request(camera=camera))
    assert TASK_ID.fullmatch(task_id)
    folder = provider.output_directory()
    assert json.loads((folder / f"{task_id}.json").read_text()) == {
        "duration": 5,
        "camera": {"type": "simple", "axis": "pan", "amount": 3},
    }
    assert (folder / f"{task_id}.input").read_bytes() == photo()
    assert (await provider.fetch(task_id)).state is ProviderState.RUNNING
    done = await finish(provider, task_id)
    assert done.state is ProviderState.SUCCEEDED
    assert read_video(local_file(provider, done)).frames == 40


async def test_a_restarted_provider_finds_and_redoes_jobs(tmp_path: Path) -> None:
    first = PreviewProvider(tmp_path / "previews", **FAST)
    try:
        task_id = await first.create(request(duration=2))
        video = local_file(first, await finish(first, task_id))
    finally:
        await first.aclose()
    second = PreviewProvider(tmp_path / "previews", **FAST)
    try:
        again = await second.fetch(task_id)
        assert again.state is ProviderState.SUCCEEDED and local_file(second, again) == video
        video.unlink()
        assert (await second.fetch(task_id)).state is ProviderState.RUNNING
        redone = await finish(second, task_id)
        assert read_video(local_file(second, redone)).frames == 16
    finally:
        await second.aclose()


async def test_renders_take_turns(provider: PreviewProvider) -> None:
    long = await provider.create(request(duration=10))
    short = await provider.create(request(duration=1))
    assert (await provider.fetch(short)).state is ProviderState.QUEUED
    for task_id in (long, short):
        assert (await finish(provider, task_id)).state is ProviderState.SUCCEEDED


async def test_a_broken_photo_fails_with_a_reason(provider: PreviewProvider) -> None:
    task_id = await provider.create(request(b"\xff\xd8 not really a jpeg"))
    failed = await finish(provider, task_id)
    assert failed.state is ProviderState.FAILED
    assert failed.error == "the photo could not be decoded"
    assert not (provider.output_directory() / f"{task_id}.mp4").exists()


@pytest.mark.parametrize(
    "task_id",
    [
        "pv-" + "0" * 32,
        "../x",
        "pv-zz",
        "",
        "pv-" + "A" * 32,
        "pv-" + "0" * 32 + "\n",
        "pv-" + "0" * 32 + "/../../etc/passwd",
        "/etc/passwd",
    ],
)
async def test_unknown_ids_are_not_found(provider: PreviewProvider, task_id: str) -> None:
    with pytest.raises(NotFoundError):
        await provider.fetch(task_id)


async def test_callbacks_are_always_rejected(provider: PreviewProvider) -> None:
    body = json.dumps({"data": {"taskId": "pv-" + "0" * 32}}).encode()
    with pytest.raises(CallbackRejectedError):
        provider.parse_callback({"content-type": "application/json"}, body, time.time())


async def test_the_backend_describes_itself(provider: PreviewProvider) -> None:
    assert provider.name == "preview"
    assert set(provider.image_types) == {"image/jpeg", "image/png", "image/webp"}
    assert provider.create_rate is None and provider.can_find is False
    assert await provider.balance() == "free"
    with pytest.raises(InvalidRequestError):
        await provider.prepare(request(duration=0))


async def test_aclose_stops_a_render_in_flight(tmp_path: Path) -> None:
    backend = PreviewProvider(tmp_path / "previews")  # full size: seconds of work
    task_id = await backend.create(request(photo(1280, 720), duration=30))
    assert (await backend.fetch(task_id)).state is ProviderState.RUNNING
    await asyncio.sleep(0.1)
    began = time.monotonic()
    await backend.aclose()
    assert time.monotonic() - began < 1.0
    names = sorted(path.name for path in backend.output_directory().iterdir())
    assert names == [f"{task_id}.input", f"{task_id}.json"], "no video and no partial file"
    with pytest.raises(ServiceUnavailableError):
        await backend.create(request())


async def test_old_files_are_swept_when_a_job_starts(provider: PreviewProvider) -> None:
    folder = provider.output_directory()
    folder.mkdir()
    old = [folder / "pv-old.mp4", folder / "pv-old.input", folder / ".pv-old.mp4.part"]
    recent = folder / "pv-recent.mp4"
    for path in [*old, recent]:
        path.write_bytes(b"x")
    three_days_ago = time.time() - 3 * 24 * 3600
    for path in old:
        os.utime(path, (three_days_ago, three_days_ago))
    os.utime(recent, (time.time() - 24 * 3600,) * 2)  # a late delivery may still want it
    task_id = await provider.create(request())
    assert not any(path.exists() for path in old)
    assert recent.exists() and (folder / f"{task_id}.input").exists()
    assert (await finish(provider, task_id)).state is ProviderState.SUCCEEDED
