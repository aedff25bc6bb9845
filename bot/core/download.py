"""Fetch a finished video into a file: streamed, size-capped, retried on dropped connections."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

CHUNK = 256 * 1024
ATTEMPTS = 3
TIMEOUT = httpx.Timeout(60.0, connect=10.0)

Counter = Callable[[int, int | None], None]


class VideoTooLarge(Exception):
    """The video is over the size the caller can take."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class OutsideRoots(PermissionError):
    """A `file://` result outside the folders local results may come from."""


async def download_video(
    client: httpx.AsyncClient,
    url: str,
    path: Path,
    *,
    limit: int | None = None,
    local_roots: tuple[Path, ...] = (),
    counter: Counter | None = None,
) -> int:
    """Write the video at `url` into `path`; its size.

    A `file://` URL (the preview backend's) is read only below `local_roots`. Raises
    VideoTooLarge past `limit`, httpx.HTTPError, or OSError (OutsideRoots among them).
    """
    if url.startswith("file:"):
        return await asyncio.to_thread(_copy_local, url, path, limit, local_roots, counter)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await _stream(client, url, path, limit, counter)
        except httpx.TransportError:
            if attempt == ATTEMPTS:
                raise
            await asyncio.sleep(attempt)
    raise AssertionError("unreachable")


async def _stream(
    client: httpx.AsyncClient, url: str, path: Path, limit: int | None, counter: Counter | None
) -> int:
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        declared = int(response.headers.get("content-length") or 0)
        if limit is not None and declared > limit:
            raise VideoTooLarge(declared)
        size = 0
        with path.open("wb") as out:
            async for chunk in response.aiter_bytes(CHUNK):
                size += len(chunk)
                if limit is not None and size > limit:
                    raise VideoTooLarge(size)
                out.write(chunk)
                if counter is not None:
                    counter(size, declared or None)
    return size


def _copy_local(
    url: str, path: Path, limit: int | None, roots: tuple[Path, ...], counter: Counter | None
) -> int:
    source = Path(url2pathname(urlsplit(url).path)).resolve()
    if not any(source.is_relative_to(root.resolve()) for root in roots):
        raise OutsideRoots(str(source))
    size = source.stat().st_size
    if limit is not None and size > limit:
        raise VideoTooLarge(size)
    shutil.copyfile(source, path)
    if counter is not None:
        counter(size, size)
    return size


async def save_video(
    client: httpx.AsyncClient,
    url: str,
    out: Path,
    *,
    local_roots: tuple[Path, ...] = (),
    counter: Counter | None = None,
) -> int:
    """Write the video to a temporary file beside `out`, then rename it to `out`; its size.

    `out` never holds a partial video: a failed download leaves it as it was.
    """
    partial = _temporary_beside(out)
    try:
        await download_video(client, url, partial, local_roots=local_roots, counter=counter)
        return _put_in_place(partial, out)
    finally:
        _remove(partial)


def _temporary_beside(out: Path) -> Path:
    """A new empty file in `out`'s folder, to be renamed to `out` when complete."""
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    return Path(name)


def _put_in_place(partial: Path, out: Path) -> int:
    """Give the finished file ordinary permissions and rename it to `out`; its size."""
    partial.chmod(_mode_for_new_files())
    partial.replace(out)
    return out.stat().st_size


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _mode_for_new_files() -> int:
    """The permissions a new file gets under the current umask (mkstemp's are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
