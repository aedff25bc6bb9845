"""`kling-bot generate` and `kling-bot check` as separate processes, against loopback fakes.

The CLI calls `asyncio.run`, so it runs in a child process while the fakes serve from the
test's event loop. The child gets a minimal environment and the test's tmp_path as working
directory, so no `.env` is read. `generate` needs only a backend key: no test gives it the
bot token.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import signal
import sys
import time
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from bot import __version__
from bot.cli.check import host_of
from bot.config import Settings
from bot.core.download import OutsideRoots, save_video
from bot.core.progress import Unseen
from bot.core.waiting import wait_for_video
from bot.engine.timing import RunTimes, Schedule, prior_of
from bot.providers.base import ProviderState, ProviderTask
from bot.providers.registry import BACKENDS, api_root
from tests.conftest import KIE_KEY, KLING_ACCESS, KLING_SECRET, TOKEN, TUZI_KEY, free_port, jpeg
from tests.fakes.common import Breakage
from tests.fakes.kie import FakeKie
from tests.fakes.kling import FakeKling
from tests.fakes.server import serve
from tests.fakes.telegram import FakeTelegram

ROOT = Path(__file__).parents[1]
BASE_ENV = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
ENTRY = "import sys; from bot.cli import main; sys.exit(main(sys.argv[1:]))"
WRONG_KIE_KEY = "kie-wrong-key-9876543210"
SECRETS = (TOKEN, KIE_KEY, KLING_ACCESS, KLING_SECRET, TUZI_KEY, WRONG_KIE_KEY)
PHOTO = jpeg(1280, 720)
TAIL = jpeg(1280, 720, "orange")
KIE_26 = "kie:kling-2.6/image-to-video"
KIE_21 = "kie:kling/v2-1-pro"
KLING_16 = "kling:kling-v1-6"
KLING_10 = "kling:kling-v1"  # camera moves (std 5 s) and the motion brush (5 s)


@dataclass
class Result:
    """How a CLI run ended."""

    code: int
    out: str
    err: str


@dataclass
class Fakes:
    """Fakes of kie.ai, the Kling API and Telegram, and the environment that points at them."""

    kie: FakeKie
    kling: FakeKling
    telegram: FakeTelegram
    env: dict[str, str]
    cwd: Path

    @property
    def check_env(self) -> dict[str, str]:
        """The environment for `check`: the bot's token as well."""
        return {**self.env, "TELEGRAM_BOT_TOKEN": TOKEN}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(width: int = 1280, height: int = 720) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height), 255).save(out, "PNG")
    return out.getvalue()


async def start_cli(args: list[str], env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ENTRY,
        *args,
        env={**BASE_ENV, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def ended(process: asyncio.subprocess.Process) -> Result:
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    result = Result(process.returncode, out.decode(), err.decode())
    for secret in SECRETS:
        assert secret not in result.out and secret not in result.err
    assert "Traceback" not in result.err, result.err
    return result


async def cli(args: list[str], env: dict[str, str], cwd: Path) -> Result:
    """Run `kling-bot ARGS` to the end; no secret and no traceback may appear in its output."""
    return await ended(await start_cli(args, env, cwd))


@asynccontextmanager
async def served(*apps: ASGIApp) -> AsyncIterator[list[str]]:
    """Serve several apps at once; they also shut down at once (each takes a while)."""
    stop = asyncio.Event()
    urls: list[asyncio.Future[str]] = [asyncio.get_running_loop().create_future() for _ in apps]

    async def run(app: ASGIApp, url: asyncio.Future[str]) -> None:
        async with serve(app) as root:
            url.set_result(root)
            await stop.wait()

    servers = [asyncio.create_task(run(app, url)) for app, url in zip(apps, urls, strict=True)]
    try:
        yield list(await asyncio.gather(*urls))
    finally:
        stop.set()
        await asyncio.gather(*servers)


@pytest.fixture
async def fakes(tmp_path: Path) -> AsyncIterator[Fakes]:
    telegram = FakeTelegram(token=TOKEN)
    async with (
        FakeKie(api_key=KIE_KEY) as kie,
        FakeKling(access_key=KLING_ACCESS, secret_key=KLING_SECRET) as kling,
        served(kie.app, kling.app, telegram.app) as (kie_url, kling_url, telegram_url),
    ):
        kie.finish_after = kling.finish_after = 0.2
        env = {
            "TELEGRAM_API_URL": telegram_url,
            "KIE_API_KEY": KIE_KEY,
            "KIE_API_URL": kie_url,
            "KIE_UPLOAD_URL": kie_url,
            "KLING_ACCESS_KEY": KLING_ACCESS,
            "KLING_SECRET_KEY": KLING_SECRET,
            "KLING_API_URL": kling_url,
            "POLL_INTERVAL": "0.05",
        }
        (tmp_path / "photo.jpg").write_bytes(PHOTO)
        (tmp_path / "tail.jpg").write_bytes(TAIL)
        try:
            yield Fakes(kie, kling, telegram, env, tmp_path)
        finally:
            telegram.shutdown()


def files_in(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


async def test_generate_with_kie_saves_the_video_under_a_default_name(fakes: Fakes) -> None:
    assert "TELEGRAM_BOT_TOKEN" not in fakes.env  # generate needs a backend key only
    result = await cli(
        ["generate", "photo.jpg", "the cat slowly blinks", "--duration", "10", "--sound"],
        fakes.env,
        fakes.cwd,
    )
    assert result.code == 0, result.err
    (task_id,) = fakes.kie.tasks
    saved = fakes.cwd / f"photo-{task_id}.mp4"
    assert result.out.strip() == str(saved)
    assert saved.read_bytes() == fakes.kie.video
    assert list(fakes.kie.uploads.values()) == [PHOTO]
    task = fakes.kie.tasks[task_id]
    assert task.model == "kling-2.6/image-to-video"
    assert task.input["sound"] is True and task.input["duration"] == "10"
    assert task.input["prompt"] == "the cat slowly blinks"
    assert files_in(fakes.cwd) == {"photo.jpg", "tail.jpg", saved.name}  # no temporary left
    assert "generating" in result.err or "queued" in result.err
    assert "\x1b[" not in result.err  # no terminal: plain lines


@pytest.mark.parametrize(
    ("model", "flags", "expected"),
    [
        (
            KLING_16,
            ["--tail", "tail.jpg", "--mode", "pro", "--negative", "blur", "--cfg", "0.3"],
            {"image_tail": b64(TAIL), "mode": "pro", "negative_prompt": "blur", "cfg_scale": 0.3},
        ),
        # No --mode given: an end frame on Kling 2.1 needs pro, so pro is chosen (and said).
        ("kling:kling-v2-1", ["--tail", "tail.jpg"], {"image_tail": b64(TAIL), "mode": "pro"}),
        (
            KLING_10,
            ["--camera", "zoom_in"],
            {"camera_control": {"type": "simple", "config": {"zoom": -5}}, "mode": "std"},
        ),
        (
            KLING_10,
            [
                "--static-mask",
                "still.png",
                "--dynamic-mask",
                "move.png:10,20;30,40;50,60",
                "--dynamic-mask",
                "move.png:0,0;5,5",
            ],
            {
                "static_mask": b64(png()),
                "dynamic_masks": [
                    {
                        "mask": b64(png()),
                        "trajectories": [
                            {"x": 10, "y": 20},
                            {"x": 30, "y": 40},
                            {"x": 50, "y": 60},
                        ],
                    },
                    {"mask": b64(png()), "trajectories": [{"x": 0, "y": 0}, {"x": 5, "y": 5}]},
                ],
            },
        ),
    ],
    ids=["end-frame", "end-frame-needs-pro", "camera", "motion-brush"],
)
async def test_generate_with_kling_options_reaches_the_create_body(
    fakes: Fakes, model: str, flags: list[str], expected: dict[str, object]
) -> None:
    (fakes.cwd / "still.png").write_bytes(png())
    (fakes.cwd / "move.png").write_bytes(png())
    out = fakes.cwd / "videos" / "cat.mp4"
    out.parent.mkdir()
    args = ["generate", "photo.jpg", "a slow turn", "--model", model, "--out", str(out)]
    result = await cli([*args, *flags], fakes.env, fakes.cwd)
    assert result.code == 0, result.err
    assert result.out.strip() == str(out)
    assert out.read_bytes() == fakes.kling.video
    (create,) = fakes.kling.creates()
    body = create.json
    assert isinstance(body, dict)
    assert body["model_name"] == model.split(":")[1] and body["image"] == b64(PHOTO)
    if model == "kling:kling-v2-1":
        assert "--mode pro: Kling 2.1 needs it" in result.err
    assert body["external_task_id"].startswith("cli-") and "callback_url" not in body
    for key, value in expected.items():
        assert body[key] == value, key
    assert fakes.kling.jwt_tokens  # signed with our keys; none of them is printed
    for token in fakes.kling.jwt_tokens:
        assert token not in result.out + result.err


async def test_generate_with_kie_kling_3_takes_its_lengths_modes_and_both_frames(
    fakes: Fakes,
) -> None:
    args = ["generate", "photo.jpg", "a storm rolls in", "--model", "kie:kling-3.0/video"]
    flags = ["--duration", "12", "--mode", "4K", "--tail", "tail.jpg", "--sound"]
    result = await cli([*args, *flags, "--out", "k3.mp4"], fakes.env, fakes.cwd)
    assert result.code == 0, result.err
    (task,) = fakes.kie.tasks.values()
    assert task.model == "kling-3.0/video"
    assert (task.input["duration"], task.input["mode"], task.input["sound"]) == ("12", "4K", True)
    assert len(task.input["image_urls"]) == 2 and task.input["aspect_ratio"] == "16:9"
    refused = await cli(["generate", "photo.jpg", "x", "--duration", "12"], fakes.env, fakes.cwd)
    assert refused.code == 2 and "makes 5 or 10 s videos" in refused.err
    tall = [*args, "--aspect", "9:16", "--out", "tall.mp4"]
    assert (await cli(tall, fakes.env, fakes.cwd)).code == 0
    assert list(fakes.kie.tasks.values())[-1].input["aspect_ratio"] == "9:16"
    refused = await cli(["generate", "photo.jpg", "x", "--aspect", "1:1"], fakes.env, fakes.cwd)
    assert refused.code == 2 and "does not take --aspect" in refused.err


async def test_generate_with_numbered_lines_makes_a_multi_shot_video(fakes: Fakes) -> None:
    prompt = "1. the kite rises\n2. it loops\n3. it lands softly"
    args = ["generate", "photo.jpg", prompt, "--model", "kie:kling-3.0/video", "--duration", "8"]
    result = await cli([*args, "--out", "shots.mp4"], fakes.env, fakes.cwd)
    assert result.code == 0, result.err
    (task,) = fakes.kie.tasks.values()
    assert task.input["multi_shots"] is True
    assert task.input["multi_prompt"] == [
        {"prompt": "the kite rises", "duration": 3},
        {"prompt": "it loops", "duration": 3},
        {"prompt": "it lands softly", "duration": 2},
    ]
    # Seven shots are more than Kling 3.0 on kie makes; a model without shots refuses --shots.
    many = "\n".join(f"{n}. step {n}" for n in range(1, 8))
    refused = await cli(
        ["generate", "photo.jpg", many, "--model", "kie:kling-3.0/video"], fakes.env, fakes.cwd
    )
    assert refused.code == 2 and "2 to 5 shots, not 7" in refused.err
    refused = await cli(["generate", "photo.jpg", "a\nb", "--shots"], fakes.env, fakes.cwd)
    assert refused.code == 2 and "has no multi-shot" in refused.err


async def test_a_failed_task_exits_1_with_the_reason(fakes: Fakes) -> None:
    fakes.kie.outcome = "fail"
    result = await cli(["generate", "photo.jpg", "a storm"], fakes.env, fakes.cwd)
    assert result.code == 1
    assert "content moderation failed" in result.err
    assert result.out == ""
    assert files_in(fakes.cwd) == {"photo.jpg", "tail.jpg"}


async def test_a_refused_key_exits_1_and_says_so(fakes: Fakes) -> None:
    env = {**fakes.env, "KIE_API_KEY": WRONG_KIE_KEY}
    result = await cli(["generate", "photo.jpg", "a storm"], env, fakes.cwd)
    assert result.code == 1
    assert "kie.ai: the key was refused" in result.err
    assert not fakes.kie.tasks


@pytest.mark.parametrize("how", ["not_json", "html_524", "reset"])
async def test_a_create_accepted_then_answered_badly_is_not_sent_again(
    fakes: Fakes, how: Breakage
) -> None:
    fakes.kie.spoil("createTask", how)
    result = await cli(["generate", "photo.jpg", "a storm"], fakes.env, fakes.cwd)
    # kie cannot be asked whether it took the task: say so, and never pay twice.
    assert result.code == 1
    assert "may have been created anyway" in result.err and "not paid for twice" in result.err
    assert len(fakes.kie.creates()) == 1 and len(fakes.kie.tasks) == 1
    fakes.kling.spoil("create", how)
    args = ["generate", "photo.jpg", "a storm", "--model", KLING_16, "--out", "k.mp4"]
    result = await cli(args, fakes.env, fakes.cwd)
    # Kling is asked by our external_task_id: the task it made is the one saved.
    assert result.code == 0, result.err
    assert (fakes.cwd / "k.mp4").read_bytes() == fakes.kling.video
    assert len(fakes.kling.creates()) == 1 and len(fakes.kling.tasks) == 1


async def test_timeout_exits_1_and_names_the_task(fakes: Fakes) -> None:
    fakes.kie.finish_after = None
    args = ["generate", "photo.jpg", "slowly", "--timeout", "0.3"]
    result = await cli(args, fakes.env, fakes.cwd)
    assert result.code == 1
    (task_id,) = fakes.kie.tasks
    assert f"no video after 0.3 s; task {task_id}" in result.err


async def test_bad_arguments_exit_2_before_any_request(fakes: Fakes) -> None:
    (fakes.cwd / "broken.jpg").write_bytes(b"not an image at all")
    (fakes.cwd / "m.png").write_bytes(png())
    masks = [flag for _ in range(7) for flag in ("--dynamic-mask", "m.png:1,1;2,2")]
    cases: list[tuple[list[str], str]] = [
        (["photo.jpg", "x" * 1001, "--model", KIE_26], "1001 characters; kie:kling-2.6"),
        (["photo.jpg", "go", "--model", KIE_21, "--sound"], f"{KIE_21} does not take --sound"),
        (["photo.jpg", "go", "--model", KIE_26, "--tail", "tail.jpg"], "does not take --tail"),
        (["photo.jpg", "go", "--model", KIE_26, "--camera", "zoom_in"], "models that do: kling:"),
        (["photo.jpg", "go", "--model", KLING_10, *masks], "7 dynamic masks; at most 6"),
        (
            ["photo.jpg", "go", "--model", KLING_10, "--tail", "tail.jpg", "--camera", "pan_left"],
            "cannot be combined",
        ),
        (["photo.jpg", "go", "--duration", "7"], "--duration 7"),
        (["missing.jpg", "go"], "cannot read the image missing.jpg"),
        (["broken.jpg", "go"], "the image broken.jpg is not a JPEG, PNG or WebP image"),
        (["strip.png", "go"], "the image strip.png is too long and narrow (more than 10:1)"),
        (["photo.jpg", "go", "--model", "kie:nope"], f"(unknown model); choose one of: {KIE_26}"),
        (["photo.jpg", "go", "--model", "tuzi:kling-v1-6"], "its backend is not configured"),
        (["photo.jpg", "go", "--model", KLING_16, "--dynamic-mask", "m.png:1,1"], "2 to 77 points"),
        (["photo.jpg", "go", "--cfg", "1.5"], "not a number from 0 to 1"),
        (
            [
                "photo.jpg",
                "go",
                "--model",
                "kling:kling-v2-1",
                "--tail",
                "tail.jpg",
                "--mode",
                "std",
            ],
            "Kling 2.1 has an end frame only in pro mode",
        ),
        (
            ["photo.jpg", "go", "--model", KLING_10, "--camera", "zoom_in", "--duration", "10"],
            "Kling 1.0 has camera moves only in std mode at 5 s",
        ),
        (["photo.jpg", "go", "--out", "nowhere/v.mp4"], "does not exist"),
        (["photo.jpg", "go", "--model", KLING_10, "--static-mask", "square.png"], "image's shape"),
    ]
    (fakes.cwd / "square.png").write_bytes(png(400, 400))
    (fakes.cwd / "strip.png").write_bytes(png(20000, 120))
    results = await asyncio.gather(
        *(cli(["generate", *args], fakes.env, fakes.cwd) for args, _ in cases)
    )
    for (args, fragment), result in zip(cases, results, strict=True):
        assert result.code == 2, (args, result.err)
        assert fragment in result.err, (args, result.err)
    assert fakes.kie.requests == [] and fakes.kling.requests == []


async def test_check_without_the_token_exits_2_like_the_bot(fakes: Fakes) -> None:
    result = await cli(["check"], fakes.env, fakes.cwd)
    assert result.code == 2
    assert "Set TELEGRAM_BOT_TOKEN to the token @BotFather gave you." in result.err
    assert fakes.telegram.calls == []


async def test_check_reports_every_part_ok(fakes: Fakes) -> None:
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async with serve(Starlette(routes=[Route("/healthz", healthz)])) as public:
        env = {**fakes.check_env, "PUBLIC_URL": public}
        result = await cli(["check"], env, fakes.cwd)
    assert result.code == 0, result.out + result.err
    lines = result.out.splitlines()
    assert all(line.startswith("ok") for line in lines), result.out
    assert any("Telegram" in line and "@kling_test_bot" in line for line in lines)
    assert any("kie.ai" in line and "1234 credits" in line for line in lines)
    assert any("Kling API" in line and "42 of 100 left" in line for line in lines)
    assert any(f"{public}/healthz answers" in line for line in lines)
    assert "\x1b[" not in result.out


async def test_check_names_the_rows_that_fail(fakes: Fakes) -> None:
    env = {
        **fakes.check_env,
        "KIE_API_KEY": WRONG_KIE_KEY,
        "PUBLIC_URL": f"http://127.0.0.1:{free_port()}",
    }
    result = await cli(["check"], env, fakes.cwd)
    assert result.code == 1
    rows = {line.split()[1]: line for line in result.out.splitlines()}
    assert rows["kie.ai"].startswith("FAIL") and "the key was refused" in rows["kie.ai"]
    assert rows["PUBLIC_URL"].startswith("FAIL") and "not reachable" in rows["PUBLIC_URL"]
    assert "is the bot running" in rows["PUBLIC_URL"]
    assert rows["Telegram"].startswith("ok") and rows["Kling"].startswith("ok")
    assert "check failed: kie.ai, PUBLIC_URL" in result.err


async def test_check_without_public_url_says_the_bot_polls(fakes: Fakes) -> None:
    env = {**fakes.check_env, "TELEGRAM_API_URL": f"http://127.0.0.1:{free_port()}"}
    result = await cli(["check"], env, fakes.cwd)
    assert result.code == 1
    rows = {line.split()[1]: line for line in result.out.splitlines()}
    assert rows["PUBLIC_URL"].startswith("ok") and "the bot polls" in rows["PUBLIC_URL"]
    assert rows["Telegram"].startswith("FAIL") and "not reachable" in rows["Telegram"]


def tree(folder: Path) -> dict[str, tuple[bool, int, int]]:
    """Every path under `folder` (itself too): whether a folder, its size and its mtime."""
    stats = {path: path.stat() for path in [folder, *folder.rglob("*")]}
    return {
        str(path.relative_to(folder)): (path.is_dir(), stat.st_size, stat.st_mtime_ns)
        for path, stat in stats.items()
    }


async def test_check_changes_nothing_on_disk(fakes: Fakes, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    telegram = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": fakes.env["TELEGRAM_API_URL"]}
    # The data folder (`data/` by default) would be made where it is missing; home too.
    for env in (fakes.check_env, telegram, {**fakes.check_env, "PREVIEW_BACKEND": "true"}):
        before = tree(empty)
        result = await cli(["check"], {**env, "HOME": str(empty)}, empty)
        assert result.code == 0, result.out + result.err
        assert tree(empty) == before


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """A loopback HTTP root whose server accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_check_says_what_it_waits_for_on_a_server_that_never_answers(fakes: Fakes) -> None:
    async with silent_server() as silent:
        host = silent.removeprefix("http://")
        env = {**fakes.check_env, "TELEGRAM_API_URL": silent, "KIE_API_URL": silent}
        env["PUBLIC_URL"] = silent
        process = await start_cli(["check", "--timeout", "6"], env, fakes.cwd)
        assert process.stderr is not None
        said: dict[str, float] = {}
        while len(said) < 5:
            line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
            assert line, said
            said[line.rstrip("\n")] = time.monotonic()
        result = await ended(process)
    exited = time.monotonic()
    kling = fakes.env["KLING_API_URL"].removeprefix("http://")
    assert list(said) == [
        f"kling-bot: checking Telegram (getMe) at {host}…",
        f"kling-bot: checking kie.ai (balance) at {host}…",
        f"kling-bot: checking Kling API (balance) at {kling}…",
        f"kling-bot: checking PUBLIC_URL (/healthz) at {host}…",
        f"kling-bot: still waiting for Telegram (getMe) at {host}, kie.ai (balance) at {host}, "
        f"PUBLIC_URL (/healthz) at {host} (5 s so far)",
    ]
    # Said before the wait, not after it: the silent server held the check for 6 s more.
    assert exited - said[f"kling-bot: checking Telegram (getMe) at {host}…"] > 5
    assert result.code == 1
    rows = {line.split()[1]: line for line in result.out.splitlines()}
    assert rows["Telegram"] == f"FAIL  Telegram    {host} did not answer within 6 s"
    assert rows["kie.ai"].startswith("FAIL") and "no complete answer within 6 s" in rows["kie.ai"]
    assert (
        rows["PUBLIC_URL"].startswith("FAIL") and "did not answer within 6 s" in rows["PUBLIC_URL"]
    )
    assert rows["Kling"].startswith("ok")
    assert result.err.endswith("check failed: Telegram, kie.ai, PUBLIC_URL\n")


def test_every_paid_backend_names_the_host_check_waits_for() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    for backend in BACKENDS:
        root = api_root(settings, backend.name)
        assert (root is not None) == backend.paid, backend.name
        assert root is None or root.startswith("https://")
    assert host_of("https://user:secret@proxy.example:8443/bot") == "proxy.example:8443"
    assert host_of("http://[::1]:8081") == "[::1]:8081"


async def test_ctrl_c_exits_130_without_a_traceback(fakes: Fakes) -> None:
    fakes.kie.finish_after = None
    poll = fakes.kie.hold("recordInfo")  # the task exists once its first poll arrives
    process = await start_cli(["generate", "photo.jpg", "forever"], fakes.env, fakes.cwd)
    await poll.wait(timeout=15)
    process.send_signal(signal.SIGINT)
    result = await ended(process)
    assert result.code == 130
    (task_id,) = fakes.kie.tasks
    assert f"task {task_id} goes on at kie.ai" in result.err and "interrupted" in result.err
    assert files_in(fakes.cwd) == {"photo.jpg", "tail.jpg"}


async def test_a_file_url_is_copied(tmp_path: Path) -> None:
    source = tmp_path / "rendered video.mp4"
    source.write_bytes(b"\x00\x00\x00\x18ftypmp42 preview")
    out = tmp_path / "out" / "v.mp4"
    out.parent.mkdir()
    async with httpx.AsyncClient() as client:
        size = await save_video(client, source.as_uri(), out, local_roots=(tmp_path,))
        assert out.read_bytes() == source.read_bytes() and size == len(source.read_bytes())
        assert files_in(out.parent) == {"v.mp4"}
        # Only from the preview's folders: a result naming any other file is refused.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        with pytest.raises(OutsideRoots):
            await save_video(
                client, source.as_uri(), out.with_name("w.mp4"), local_roots=(elsewhere,)
            )
    assert files_in(out.parent) == {"v.mp4"}


async def test_generate_with_the_free_preview_needs_no_key(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(PHOTO)
    env = {"DATABASE_PATH": str(tmp_path / "data" / "bot.sqlite3"), "POLL_INTERVAL": "0.1"}
    result = await cli(
        ["generate", "photo.jpg", "a gentle zoom", "--duration", "5", "--out", "v.mp4"],
        env,
        tmp_path,
    )
    assert result.code == 0, result.err
    import av

    with av.open(str(tmp_path / "v.mp4")) as container:
        seconds = float(container.duration or 0) / av.time_base
        assert container.streams.video[0].codec_context.name == "h264"
    assert abs(seconds - 5.0) < 0.2


@pytest.mark.parametrize(
    ("backend", "first"),
    [("preview", 1.0), ("kie", 10.0)],
)
async def test_generate_waits_on_the_bots_schedule(
    monkeypatch: pytest.MonkeyPatch, backend: str, first: float
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    class Ready:
        async def fetch(self, task_id: str) -> ProviderTask:
            return ProviderTask(id=task_id, state=ProviderState.SUCCEEDED, video_url="https://v")

    monkeypatch.setattr(asyncio, "sleep", sleep)
    schedule = Schedule(RunTimes((), prior_of(f"{backend}:model|-|5|-", 10.0)), 10.0)
    done = await wait_for_video(Ready(), "t1", schedule, 1200.0, Unseen())  # type: ignore[arg-type]
    # A preview is ready in seconds: its first look is after 1 s, not one POLL_INTERVAL;
    # a Kling task's first look comes after one interval (quick refusals), not at ~131 s.
    assert done.video_url == "https://v" and slept == [pytest.approx(first, abs=0.01)]


async def test_version_is_the_packages_in_pyproject(tmp_path: Path) -> None:
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for entry in (["-m", "bot"], ["-c", ENTRY]):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *entry,
            "--version",
            env={**BASE_ENV, "PYTHONPATH": str(ROOT)},
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert (process.returncode, out.decode(), err.decode()) == (
            0,
            f"kling-bot {expected}\n",
            "",
        )
    assert __version__ == expected, "the User-Agent's version is the package's"
