"""kling-bot: a Telegram bot that turns a photo and a caption into a Kling video."""

__version__ = "0.1.0"
