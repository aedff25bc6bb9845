"""What the bot and the command line share below the providers: no Telegram, no storage."""
