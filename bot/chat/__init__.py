"""The chat side of the engine's work: status messages, notices, video uploads into Telegram."""
