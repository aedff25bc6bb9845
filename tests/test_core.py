"""The generation core on its own: the request, the free preparation, the download."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from bot.core.download import VideoTooLarge, download_video, save_video
from bot.core.failures import Failure
from bot.core.paid import prepare
from bot.core.request import Choices, Images, RequestRefused, build_request
from bot.providers.base import ImageFile, PreparedTask, VideoRequest
from bot.providers.catalogue import ModelSpec
from bot.providers.errors import InvalidRequestError, ProviderTimeoutError
from bot.providers.registry import BACKENDS, catalogue_of

MODELS = catalogue_of([b.name for b in BACKENDS]).models


def image(color: str = "teal") -> ImageFile:
    out = io.BytesIO()
    Image.new("RGB", (640, 360), color).save(out, "JPEG")
    return ImageFile(
        data=out.getvalue(), mime_type="image/jpeg", file_name="a.jpg", width=640, height=360
    )


def first(which: str, test: bool) -> ModelSpec:
    return next(spec for spec in MODELS if bool(getattr(spec, which)) is test)


def test_a_request_carries_only_what_its_model_takes() -> None:
    spec = first("sound", False)
    choices = Choices(prompt="p", duration=spec.durations[0], sound=True, cfg_scale=0.5)
    request = build_request(spec, choices, Images(photo=image()), external_id="x")
    assert request.sound is None
    assert (request.cfg_scale is None) is (not spec.cfg_scale)
    no_end = first("end_frame", False)
    photos = Images(photo=image(), end_frame=image("orange"))
    choices = Choices(prompt="p", duration=no_end.durations[0])
    assert build_request(no_end, choices, photos, external_id="x").tail_image is None


def test_with_an_end_frame_the_camera_stays_home() -> None:
    spec = next(s for s in MODELS if s.end_frame and s.camera)
    choices = Choices(
        prompt="p", duration=spec.durations[0], mode=spec.modes[-1], camera="simple_zoom_in"
    )
    photos = Images(photo=image(), end_frame=image("orange"))
    try:
        request = build_request(spec, choices, photos, external_id="x")
    except RequestRefused:
        return  # the map refuses an end frame in this mode: refused, never sent half-made
    assert request.tail_image is not None and request.camera is None


def test_what_the_map_refuses_is_refused_before_anything_is_paid() -> None:
    spec = MODELS[0]
    too_long = max(spec.durations) + 100
    with pytest.raises(RequestRefused):
        build_request(
            spec, Choices(prompt="p", duration=too_long), Images(photo=image()), external_id="x"
        )


class Flaky:
    """A provider whose uploads time out `times` times, then work."""

    name = "flaky"

    def __init__(self, times: int, error: Exception) -> None:
        self.calls = 0
        self._times = times
        self._error = error

    async def prepare(self, request: VideoRequest) -> PreparedTask:
        self.calls += 1
        if self.calls <= self._times:
            raise self._error
        return PreparedTask(route="/create", payload={"id": request.external_id})


def request_of() -> VideoRequest:
    return VideoRequest(model="m", prompt="p", image=image(), duration=5, external_id="x")


async def test_a_lost_upload_answer_is_tried_again_and_then_called_unavailable() -> None:
    # Nothing is paid for an upload: a lost answer is retried, and in the end it is the
    # service being unavailable, never "the task may have started".
    works = Flaky(2, ProviderTimeoutError("slow"))
    assert (await prepare(works, request_of(), base=0.0)).payload == {"id": "x"}  # type: ignore[arg-type]
    assert works.calls == 3
    never = Flaky(99, ProviderTimeoutError("slow"))
    with pytest.raises(Exception) as caught:
        await prepare(never, request_of(), base=0.0)  # type: ignore[arg-type]
    assert caught.value.reason is Failure.UNAVAILABLE  # type: ignore[attr-defined]
    refused = Flaky(99, InvalidRequestError("no"))
    with pytest.raises(InvalidRequestError):
        await prepare(refused, request_of(), base=0.0)  # type: ignore[arg-type]
    assert refused.calls == 1


VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(300_000)


def serving(*, declare: bool = True, drops: int = 0) -> httpx.AsyncClient:
    """A client whose server sends VIDEO, after dropping the first `drops` connections."""
    dropped = 0

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(VIDEO), 65536):
            yield VIDEO[start : start + 65536]

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal dropped
        if dropped < drops:
            dropped += 1
            raise httpx.ConnectError("dropped", request=request)
        headers = {"content-length": str(len(VIDEO))} if declare else {}
        return httpx.Response(200, headers=headers, content=VIDEO if declare else chunks())

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_a_download_is_retried_after_a_dropped_connection(tmp_path: Path) -> None:
    async with serving(drops=2) as client:
        size = await download_video(client, "https://v/a.mp4", tmp_path / "a.mp4")
    assert size == len(VIDEO) and (tmp_path / "a.mp4").read_bytes() == VIDEO


@pytest.mark.parametrize("declare", [True, False])
async def test_a_video_over_the_limit_is_refused(tmp_path: Path, declare: bool) -> None:
    async with serving(declare=declare) as client:
        with pytest.raises(VideoTooLarge):
            await download_video(client, "https://v/a.mp4", tmp_path / "a.mp4", limit=100_000)


async def test_a_saved_video_is_whole_or_not_there(tmp_path: Path) -> None:
    out = tmp_path / "v.mp4"
    async with serving(drops=99) as client:
        with pytest.raises(httpx.ConnectError):
            await save_video(client, "https://v/a.mp4", out)
    assert list(tmp_path.iterdir()) == []
    seen: list[tuple[int, int | None]] = []
    async with serving() as client:
        await save_video(client, "https://v/a.mp4", out, counter=lambda d, t: seen.append((d, t)))
    assert out.read_bytes() == VIDEO and seen[-1] == (len(VIDEO), len(VIDEO))
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
