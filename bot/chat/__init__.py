"""The Telegram layer: handlers, views, texts, and the messages the bot sends and edits."""
