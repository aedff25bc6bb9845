"""What the bot shows, one module per screen: its texts and its keyboard."""
