"""/settings: the user's defaults for new drafts and their language, with buttons to change them."""

from __future__ import annotations

import html

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.chat.callback_data import SettingsAction, SettingsButton
from bot.chat.texts import LANGUAGES, t
from bot.chat.views.models import model_rows
from bot.chat.views.parts import duration_choices
from bot.drafts.options import mode_code, next_mode, switch_to
from bot.providers.catalogue import Catalogue
from storage.models import GenerationOptions


def _settings_button(
    text: str, action: SettingsAction, arg: str | None = None
) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=SettingsButton(action, arg).encode())


def settings_screen(
    lang: str, options: GenerationOptions, catalogue: Catalogue
) -> tuple[str, InlineKeyboardMarkup]:
    """/settings: the user's defaults and buttons to change them."""
    spec = catalogue.get(options.model)
    extras = ""
    if spec is not None and spec.sound:
        extras += t(lang, "draft.sound_on" if options.sound else "draft.sound_off")
    if spec is not None and len(spec.modes) > 1 and options.mode:
        extras += t(lang, "draft.mode", mode=t(lang, f"mode.{options.mode}"))
    text = "\n".join(
        [
            t(lang, "settings.title"),
            "",
            t(
                lang,
                "settings.body",
                model=html.escape(catalogue.label(options.model)),
                duration=options.duration,
                extras=extras,
                language=t(lang, f"language.{lang}"),
            ),
            "",
            t(lang, "settings.hint"),
        ]
    )
    durations = spec.durations if spec else (options.duration,)
    rows = [
        [
            _settings_button(
                ("✅ " if seconds == options.duration else "")
                + t(lang, "btn.duration", seconds=seconds),
                SettingsAction.DURATION,
                str(seconds),
            )
            for seconds in duration_choices(durations, options.duration)
        ]
    ]
    toggles = []
    if spec is not None and spec.sound:
        key = "btn.sound_on" if options.sound else "btn.sound_off"
        sound = switch_to(not options.sound)
        toggles.append(_settings_button(t(lang, key), SettingsAction.SOUND, sound))
    if spec is not None and len(spec.modes) > 1 and options.mode:
        mode = t(lang, f"mode.{options.mode}")
        following = mode_code(next_mode(spec.modes, options.mode) or options.mode)
        label = t(lang, "btn.mode", mode=mode)
        toggles.append(_settings_button(label, SettingsAction.MODE, following))
    if toggles:
        rows.append(toggles)
    if len(catalogue.models) > 1:
        label = t(lang, "btn.model", model=catalogue.label(options.model)) + " ▾"
        rows.append([_settings_button(label, SettingsAction.MODEL_MENU)])
    rows.append(
        [
            _settings_button(
                ("✅ " if code == lang else "") + t(code, f"language.{code}"),
                SettingsAction.LANGUAGE,
                code,
            )
            for code in LANGUAGES
        ]
    )
    return text, InlineKeyboardMarkup(rows)


def settings_models(
    lang: str, current: str, catalogue: Catalogue, group: str | None = None
) -> InlineKeyboardMarkup:
    """The default-model menu of /settings."""
    rows = model_rows(
        catalogue,
        current,
        group,
        lambda text, code: _settings_button(text, SettingsAction.MODEL, code),
        lambda text, name: _settings_button(text, SettingsAction.MODEL_GROUP, name),
    )
    rows.append([_settings_button(t(lang, "btn.back"), SettingsAction.BACK)])
    return InlineKeyboardMarkup(rows)
