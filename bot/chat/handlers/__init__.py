"""Telegram handlers, one module per feature: parse the update, call a service, show the result."""
