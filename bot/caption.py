"""Read a caption: the prompt, plus an optional negative prompt and cfg_scale.

Accepted forms, on their own line or inline at the end:
    --no blurry, text        negative: blurry     反向：模糊
    --cfg 0.7                cfg: 0.7
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NEGATIVE_WORDS = r"negative|neg|反向提示词|反向|负面提示词|负面|负向"
_LINE = re.compile(rf"^\s*(?P<key>{_NEGATIVE_WORDS}|cfg)\s*[:：]\s*(?P<value>.*)$", re.I | re.M)
_FLAG = re.compile(r"(?:^|\s)--(?P<key>no|neg|negative|cfg)(?:\s*=\s*|\s+|$)", re.I)


@dataclass(frozen=True)
class Caption:
    """What a caption asks for."""

    prompt: str
    negative_prompt: str | None = None
    cfg_scale: float | None = None


def _cfg(value: str) -> float | None:
    try:
        number = float(value.strip().replace("，", ".").replace(",", "."))
    except ValueError:
        return None
    return round(min(1.0, max(0.0, number)), 2)


def parse_caption(text: str) -> Caption:
    """Split `text` into prompt, negative prompt and cfg_scale."""
    found: dict[str, str] = {}

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
    return Caption(prompt=text.strip(), negative_prompt=negative, cfg_scale=cfg)
