"""Sending a 45 MB video raises the bot's peak memory by at most 10 MB: it is streamed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from tests.fakes.server import serve
from tests.fakes.telegram import FakeTelegram

SIZE = 45 * 1024 * 1024
GROWTH_LIMIT_MB = 10
TOKEN = "123456:TEST-TOKEN"
ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter: one small upload first (imports, pools), then the big one in a
# process forked for it, which reports the growth of its peak RSS over its RSS just before.
CHILD = """
import asyncio, json, os, resource, sys
from pathlib import Path
from telegram import Bot
from bot.chat.upload import VideoUploader

url, token, small, big = sys.argv[1:5]

def rss_kib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 1024

async def send(path):
    async with Bot(token, base_url=url + "/bot") as bot:
        await VideoUploader(bot).send_video(
            42, Path(path), caption="c", reply_to=1, reply_markup=None, filename="v.mp4"
        )

asyncio.run(send(small))
pid = os.fork()
if pid == 0:
    before = rss_kib()
    asyncio.run(send(big))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps((peak - before) / 1024), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


async def test_a_45_mb_video_is_streamed_from_disk(tmp_path: Path) -> None:
    if not Path("/proc/self/statm").exists():
        pytest.skip("needs Linux's /proc to read the RSS")
    small, big = tmp_path / "small.mp4", tmp_path / "big.mp4"
    small.write_bytes(os.urandom(64 * 1024))
    data = os.urandom(SIZE)
    big.write_bytes(data)
    telegram = FakeTelegram(token=TOKEN)
    async with serve(telegram.app) as url:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            url,
            TOKEN,
            str(small),
            str(big),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(child.communicate(), timeout=120)
    assert child.returncode == 0
    growth = json.loads(out)
    videos = [call.files.get("video") for call in telegram.calls_of("sendVideo")]
    assert len(videos) == 2 and videos[1] == data
    assert growth < GROWTH_LIMIT_MB, f"peak RSS grew by {growth:.1f} MB"
