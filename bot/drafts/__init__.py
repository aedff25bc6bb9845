"""Drafts below Telegram: the options a model takes, and opening, changing and starting drafts."""
