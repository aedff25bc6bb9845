"""Load benchmark: the bot as its own process against the loopback fakes of `tests/`."""
