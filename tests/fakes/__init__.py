"""Loopback fakes of the Telegram Bot API and of the video providers."""
