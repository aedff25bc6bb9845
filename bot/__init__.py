"""kling-bot: a Telegram bot that turns a photo and a caption into a Kling video."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kling-bot")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
