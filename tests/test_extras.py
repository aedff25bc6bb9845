"""Optional extras: found without importing them, and the line that says how to add one."""

from __future__ import annotations

import sys

import pytest

from bot.providers.extras import PREVIEW, Extra


def test_the_preview_extra_is_found_without_importing_pyav() -> None:
    imported = "av" in sys.modules
    assert PREVIEW.installed()  # the test extra brings the preview extra
    assert ("av" in sys.modules) == imported


def test_a_missing_extra_says_how_to_install_it() -> None:
    absent = Extra(name="preview", module="no_such_module_kb", title="PyAV")
    assert not absent.installed()
    assert absent.needed_by("PREVIEW_BACKEND=true") == (
        "PREVIEW_BACKEND=true needs PyAV, which the default install leaves out: "
        'pip install "kling-bot[preview]" (from a checkout: pip install ".[preview]").'
    )


def test_without_pyav_the_preview_is_off_unless_asked_for_and_then_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.providers import preview

    monkeypatch.setattr(Extra, "installed", lambda self: False)
    unset = preview.PreviewSettings()
    assert not preview.BACKEND.enabled(unset)
    assert preview.BACKEND.problems(unset) == []
    asked = preview.PreviewSettings(preview_backend=True)
    (problem,) = preview.BACKEND.problems(asked)
    assert problem.startswith("PREVIEW_BACKEND=true needs PyAV")
    monkeypatch.setattr(Extra, "installed", lambda self: True)
    assert preview.BACKEND.enabled(unset) is None  # on exactly when no paid backend is set
