"""Read a caption: the prompt, plus an optional negative prompt and cfg_scale.

Accepted forms, on their own line or inline at the end:
    --no blurry, text        negative: blurry     反向：模糊
    --cfg 0.7                cfg: 0.7
Shots for multi-shot models: lines numbered 1, 2, 3 … ("1. …", "2) …", "3、…"), or any lines
with `--shots` anywhere in the caption (one shot a line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NEGATIVE_WORDS = r"negative|neg|反向提示词|反向|负面提示词|负面|负向"
_LINE = re.compile(rf"^\s*(?P<key>{_NEGATIVE_WORDS}|cfg)\s*[:：]\s*(?P<value>.*)$", re.I | re.M)
_FLAG = re.compile(r"(?:^|\s)--(?P<key>no|neg|negative|cfg)(?:\s*=\s*|\s+|$)", re.I)
_SHOTS_FLAG = re.compile(r"(?:^|[ \t])--shots\b[ \t]*", re.I | re.M)
_NUMBERED = re.compile(r"^\s*(\d{1,2})\s*[.)、．:：]\s*(\S.*)$")


@dataclass(frozen=True)
class Caption:
    """What a caption asks for."""

    prompt: str
    negative_prompt: str | None = None
    cfg_scale: float | None = None
    # The prompt split into shots, when it is written as shots.
    shots: tuple[str, ...] = ()


def shot_lines(prompt: str, every_line: bool = False) -> tuple[str, ...]:
    """The shots a prompt is written as: its lines numbered 1, 2, 3 … (all of them), or, with
    `every_line`, each non-empty line; () when it is one shot."""
    lines = [line.strip() for line in prompt.splitlines() if line.strip()]
    if len(lines) < 2:
        return ()
    if every_line:
        return tuple(lines)
    numbered = [_NUMBERED.match(line) for line in lines]
    if all(numbered) and [int(m[1]) for m in numbered if m] == list(range(1, len(lines) + 1)):
        return tuple(m[2].strip() for m in numbered if m)
    return ()


def _cfg(value: str) -> float | None:
    try:
        number = float(value.strip().replace("，", ".").replace(",", "."))
    except ValueError:
        return None
    return round(min(1.0, max(0.0, number)), 2)


def parse_caption(text: str) -> Caption:
    """Split `text` into prompt, negative prompt, cfg_scale and shots."""
    found: dict[str, str] = {}
    every_line = bool(_SHOTS_FLAG.search(text))
    text = _SHOTS_FLAG.sub(" ", text)

    def take_line(match: re.Match[str]) -> str:
        key = "cfg" if match["key"].lower() == "cfg" else "negative"
        found[key] = match["value"].strip()
        return ""

    text = _LINE.sub(take_line, text)
    flags = list(_FLAG.finditer(text))
    for index, match in enumerate(flags):
        end = flags[index + 1].start() if index + 1 < len(flags) else len(text)
        key = "cfg" if match["key"].lower() == "cfg" else "negative"
        found[key] = text[match.end() : end].strip()
    if flags:
        text = text[: flags[0].start()]
    negative = found.get("negative") or None
    cfg = _cfg(found["cfg"]) if "cfg" in found else None
    prompt = text.strip()
    return Caption(prompt, negative, cfg, shot_lines(prompt, every_line))
