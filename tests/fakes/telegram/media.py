"""Files as Telegram keeps them: photo thumbnails, image sizes, folders and MIME types."""

from __future__ import annotations

import functools
import io
import mimetypes
import re

from PIL import Image

from tests.fakes.telegram.parsing import Upload

# Where Telegram files a stored file's path, by suffix.
FOLDERS = {
    ".jpg": "photos",
    ".jpeg": "photos",
    ".png": "photos",
    ".webp": "stickers",
    ".mp4": "videos",
    ".oga": "voice",
    ".ogg": "voice",
}


def fit(width: int, height: int, box: int) -> tuple[int, int]:
    """Return the size of a `width`×`height` image scaled down to fit a `box`-pixel square."""
    scale = min(1.0, box / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


# Made once per image: every photo becomes three sizes, and tests and the benchmark send the
# same photo many times (15 ms a thumbnail otherwise).
@functools.lru_cache(maxsize=8)
def thumbnail(image: bytes, width: int, height: int) -> bytes:
    """Return a real JPEG thumbnail, or placeholder bytes when `image` isn't decodable."""
    try:
        with Image.open(io.BytesIO(image)) as opened:
            small = opened.convert("RGB").resize((width, height))
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG")
        return buffer.getvalue()
    except Exception:  # any undecodable input just gets placeholder bytes
        return f"thumbnail {width}x{height}".encode()


def image_size(image: bytes) -> tuple[int, int]:
    """Return an image's width and height; undecodable uploads get a typical size."""
    try:
        with Image.open(io.BytesIO(image)) as opened:
            return opened.size
    except Exception:  # undecodable uploads get a typical size
        return 1280, 720


def suffix(filename: str, default: str) -> str:
    """Return a file name's lower-case suffix, or `default` when it has none."""
    match = re.search(r"\.[A-Za-z0-9]{1,8}$", filename)
    return match.group().lower() if match else default


def mime_type(upload: Upload) -> str:
    """Return an upload's MIME type: as sent, else guessed from its file name."""
    if upload.content_type and upload.content_type != "application/octet-stream":
        return upload.content_type
    return mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
