"""Camera-move presets offered in the draft, as official-shape `camera_control` values."""

from __future__ import annotations

from bot.providers.base import CameraMove

# Kling's axes: zoom < 0 narrows the view (moves in); pan < 0 turns left; tilt > 0 looks up.
PRESETS: dict[str, CameraMove] = {
    "zoom_in": CameraMove(type="simple", axis="zoom", amount=-5),
    "zoom_out": CameraMove(type="simple", axis="zoom", amount=5),
    "pan_left": CameraMove(type="simple", axis="pan", amount=-5),
    "pan_right": CameraMove(type="simple", axis="pan", amount=5),
    "tilt_up": CameraMove(type="simple", axis="tilt", amount=5),
    "tilt_down": CameraMove(type="simple", axis="tilt", amount=-5),
    "down_back": CameraMove(type="down_back"),
    "forward_up": CameraMove(type="forward_up"),
    "right_turn_forward": CameraMove(type="right_turn_forward"),
    "left_turn_forward": CameraMove(type="left_turn_forward"),
}

# Short codes for callback_data (64 bytes at most).
CODES: dict[str, str] = {
    "zi": "zoom_in",
    "zo": "zoom_out",
    "pl": "pan_left",
    "pr": "pan_right",
    "tu": "tilt_up",
    "td": "tilt_down",
    "db": "down_back",
    "fu": "forward_up",
    "rt": "right_turn_forward",
    "lt": "left_turn_forward",
}
CODE_OF = {name: code for code, name in CODES.items()}
