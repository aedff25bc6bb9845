"""What admins read: /balance, /stats, and the alert when a backend needs them."""

from __future__ import annotations

import html
import time
from collections.abc import Sequence

from bot.chat.texts import LANGUAGES, t
from bot.chat.views.parts import age, excerpt
from bot.chat.views.status import reason_text
from bot.providers.catalogue import Catalogue
from storage import Stats
from storage.models import Task, TaskState

# A message holds 4096 characters; each backend's line of /balance gets its share of that.
MESSAGE_LIMIT = 4096
BALANCE_DETAIL = 600


def balance_text(lang: str, lines: list[tuple[str, str | None, str | None]]) -> str:
    """/balance: (backend, balance, error) per backend."""
    out = [t(lang, "balance.title")]
    # Provider text is theirs to make as long (or as full of < & >) as they like.
    share = min(BALANCE_DETAIL, (MESSAGE_LIMIT - 100) // max(1, len(lines)) - 60)
    for backend, text, error in lines:
        name = html.escape(excerpt(backend, 40))
        if error is None:
            detail = html.escape(excerpt(text or "", share))
            out.append(t(lang, "balance.line", backend=name, text=detail))
        else:
            detail = html.escape(excerpt(error, share))
            out.append(t(lang, "balance.error", backend=name, error=detail))
    return "\n".join(out)


def _counts(lang: str, counts: dict[str, int]) -> str:
    if not counts:
        return t(lang, "stats.none")
    return ", ".join(f"{html.escape(key)} {value}" for key, value in counts.items())


def stats_text(
    lang: str,
    stats: Stats,
    catalogue: Catalogue,
    task_timeout: float,
    undelivered: Sequence[Task] = (),
) -> str:
    """/stats: tasks by state, model and day, the latest failures, and videos not yet sent."""
    states = {t(lang, f"state.{TaskState(k).value}"): v for k, v in stats.by_state.items()}
    models = {catalogue.label(k): v for k, v in stats.by_model.items()}
    lines = [
        t(lang, "stats.title"),
        "",
        t(lang, "stats.by_state", items=_counts(lang, states)),
        t(lang, "stats.by_model", items=_counts(lang, models)),
        t(lang, "stats.by_day", items=_counts(lang, stats.by_day)),
        "",
        t(lang, "stats.failures"),
    ]
    now = time.time()
    for task in stats.recent_failures:
        reason = reason_text(task.model_copy(update={"lang": lang}), task_timeout, True)
        lines.append(
            t(
                lang,
                "stats.failure",
                id=task.id,
                model=html.escape(catalogue.label(task.options.model)),
                age=age(lang, now - (task.finished_at or task.created_at)),
                reason=reason,
            )
        )
    if not stats.recent_failures:
        lines.append(t(lang, "stats.none"))
    if undelivered:
        lines += ["", t(lang, "stats.undelivered")]
        for task in undelivered:
            model = html.escape(catalogue.label(task.options.model))
            since = age(lang, now - task.updated_at)
            lines.append(t(lang, "stats.undelivered_item", id=task.id, model=model, age=since))
    return "\n".join(lines)


def alert_text(title: str, reason: str, detail: str | None, count: int = 0) -> str:
    """The admins' alert that backend `title` needs them, in every language."""
    text = "\n\n".join(
        t(
            lang,
            "admin.alert",
            backend=html.escape(title),
            reason=t(lang, f"admin.{reason}", count=count),
        )
        for lang in LANGUAGES
    )
    if detail:
        text += f"\n\n<code>{html.escape(detail[:300])}</code>"
    return text
