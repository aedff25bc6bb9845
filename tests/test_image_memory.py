"""No incoming image, however it is made, raises the bot's memory by more than 50 MB."""

from __future__ import annotations

import io
import json
import logging
import math
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from storage.models import TaskState
from tests.conftest import Harness, button, jpeg
from tests.fakes.telegram import FakeUser

Run = Callable[..., Any]

GROWTH_LIMIT_MB = 50
ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter: each file is checked (as at intake) and prepared (as at submit)
# in a process of its own, forked once the modules are loaded, as for a backend that takes only
# JPEG (so a PNG is re-encoded, the costly way); each reports the growth of its
# peak RSS over its RSS just before.
CHILD = """
import io, json, os, resource, sys
from PIL import Image
from bot.core import images

def rss_kib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 1024

def run(data):
    try:
        if hasattr(images, "check_image"):
            images.check_image(data)
        image = images.prepare_image(data, ("image/jpeg",))
    except images.ImageError as exc:
        return "refused: " + exc.reason
    except Exception as exc:
        return "crashed: " + type(exc).__name__
    return "image %dx%d" % (image.width, image.height)

warm = io.BytesIO()
Image.new("RGB", (600, 120), "teal").save(warm, "PNG")
run(warm.getvalue())
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    pid = os.fork()
    if pid == 0:
        before = rss_kib()
        outcome = run(data)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps([os.path.basename(path), (peak - before) / 1024, outcome]), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
"""


def _segment(marker: bytes, payload: bytes) -> bytes:
    return marker + struct.pack(">H", len(payload) + 2) + payload


def grey_jpeg(width: int, height: int, *, progressive: bool = False) -> bytes:
    """A valid mid-grey 4:2:0 JPEG of any size, written directly: a few bits per 16x16 block."""
    frame = struct.pack(">BHHB", 8, height, width, 3) + bytes([1, 0x22, 0, 2, 0x11, 0, 3, 0x11, 0])
    # One Huffman table of one 1-bit code, "0": a DC difference of 0, or the end of a block.
    counts = bytes([1] + [0] * 15)
    spectral = bytes([0, 0, 0]) if progressive else bytes([0, 63, 0])
    blocks = math.ceil(width / 16) * math.ceil(height / 16) * 6
    return b"".join(
        [
            b"\xff\xd8",
            _segment(b"\xff\xdb", b"\x00" + bytes([1] * 64)),
            _segment(b"\xff\xc2" if progressive else b"\xff\xc0", frame),
            _segment(b"\xff\xc4", b"\x00" + counts + b"\x00" + b"\x10" + counts + b"\x00"),
            _segment(b"\xff\xda", bytes([3, 1, 0, 2, 0, 3, 0]) + spectral),
            bytes(math.ceil(blocks * (1 if progressive else 2) / 8)),
            b"\xff\xd9",
        ]
    )


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def black_png(width: int, height: int, *, text_chunks: int = 0) -> bytes:
    """A valid black 1-bit PNG of any size, compressed row by row; optionally with text bombs."""
    row = bytes(1 + math.ceil(width / 8))
    packer = zlib.compressobj(9)
    step = max(1, (1 << 22) // len(row))
    pixels = b"".join(
        packer.compress(row * min(step, height - top)) for top in range(0, height, step)
    )
    texts = b"".join(
        _chunk(b"zTXt", b"note%d\x00\x00" % n + zlib.compress(b"a" * 1_000_000, 9))
        for n in range(text_chunks)
    )
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)),
            texts,
            _chunk(b"IDAT", pixels + packer.flush()),
            _chunk(b"IEND", b""),
        ]
    )


def plain(mode: str, width: int, height: int, kind: str = "PNG") -> Callable[[], bytes]:
    """A maker of a one-colour image file."""

    def make() -> bytes:
        out = io.BytesIO()
        Image.new(mode, (width, height), "teal").save(out, kind)
        return out.getvalue()

    return make


# file name → what must come of it: a refusal's reason, or an image (width x height).
FILES = {
    "wide-20000x120.png": (plain("RGB", 20000, 120), "image_shape"),
    "strip-1x50000.png": (plain("RGB", 1, 50000), "image_shape"),
    "bomb-30000x30000.png": (lambda: black_png(30000, 30000), "image_too_large"),
    "bomb-10000x10000.png": (lambda: black_png(10000, 10000), "image_too_large"),
    "bomb-8000x8000.png": (lambda: black_png(8000, 8000), "image_too_large"),
    "text-bomb.png": (lambda: black_png(640, 480, text_chunks=60), "image_unreadable"),
    "progressive-10000x8000.jpg": (
        lambda: grey_jpeg(10000, 8000, progressive=True),
        "image_too_large",
    ),
    "huge-10000x8000.jpg": (lambda: grey_jpeg(10000, 8000), "image 10000x8000"),
    "huge-7999x7999.jpg": (lambda: grey_jpeg(7999, 7999), "image 7999x7999"),
    "panorama-20000x4000.jpg": (lambda: grey_jpeg(20000, 4000), "image 3033x1214"),
    # The most a PNG may decode to, then scaled down: the costliest file that is taken.
    "png-2400x2400.png": (plain("RGB", 2400, 2400), "image 1920x1920"),
    "rgba-3000x1000.png": (plain("RGBA", 3000, 1000), "image 3000x1200"),
    "webp-1220x1220.webp": (plain("RGB", 1220, 1220, "WEBP"), "image 1220x1220"),
    "webp-1800x1800.webp": (plain("RGB", 1800, 1800, "WEBP"), "image_too_large"),
}


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[float, str]]:
    """Peak RSS growth (MB) and outcome of each file, measured in a child process."""
    if not Path("/proc/self/statm").exists():
        pytest.skip("needs Linux's /proc to read the RSS")
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for name, (make, _) in FILES.items():
        path = folder / name
        path.write_bytes(make())
        paths.append(str(path))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return {name: (growth, outcome) for name, growth, outcome in rows}


@pytest.mark.parametrize("name", list(FILES))
def test_each_file_stays_under_50_mb_and_gets_its_answer(
    measured: dict[str, tuple[float, str]], name: str
) -> None:
    growth, outcome = measured[name]
    expected = FILES[name][1]
    wanted = expected if expected.startswith("image ") else f"refused: {expected}"
    assert outcome == wanted, f"{name}: {outcome} (peak RSS growth {growth:.1f} MB)"
    assert growth < GROWTH_LIMIT_MB, f"{name}: peak RSS grew by {growth:.1f} MB"


async def test_odd_files_are_refused_kindly_at_intake(
    harness: Run, caplog: pytest.LogCaptureFixture
) -> None:
    wide, bomb = plain("RGB", 20000, 120)(), black_png(30000, 30000)
    async with harness() as h:
        li = FakeUser(id=4004, first_name="Li", language_code="zh-hans")
        answers = {
            "too long and narrow": h.telegram.send_document(h.user, wide, "w.png", "image/png"),
            "太细长": h.telegram.send_document(li, wide, "w.png", "image/png", caption="动"),
            "too many pixels": h.telegram.send_document(h.user, bomb, "b.png", "image/png"),
            "像素太多": h.telegram.send_document(li, bomb, "b.png", "image/png"),
            "shapes up to": h.telegram.send_photo(
                h.user, jpeg(2100, 200), "a strip", width=2100, height=200
            ),
        }
        for expected, message in answers.items():
            assert expected in (await h.reply_to(message)).params["text"]
        assert h.kie.requests == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_odd_image_found_at_submit_fails_the_task_kindly(
    harness: Run, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness() as h:
        # A photo whose sizes said nothing odd: only its bytes, fetched at submit, are.
        await generate_with(h, plain("RGB", 20000, 120)())
        task = await h.wait_task(lambda t: t.state is TaskState.FAILED)
        assert task.error == "image_shape"
        status = await h.telegram.wait_for_call(
            "editMessageText", lambda c: "too long and narrow" in c.params["text"]
        )
        assert "reply_markup" not in status[-1].params  # a Retry could not mend it
        assert h.kie.creates() == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def generate_with(h: Harness, image: bytes) -> None:
    """Send `image` as a photo Telegram measured at 1280x720, and tap Generate."""
    photo = h.telegram.send_photo(h.user, image, "it moves", width=1280, height=720)
    draft = await h.draft_for(photo)
    h.telegram.tap(h.user, draft, button(draft, "Generate"))
