"""The engine: submit tasks, track them, deliver their videos."""
