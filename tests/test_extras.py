"""Optional extras: found without importing them, and the line that says how to add one."""

from __future__ import annotations

import sys

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
