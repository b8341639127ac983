"""Warming up a preheated kernel: a throwaway screen that leaves nothing behind."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from cmrqc_widgets.widgets.warmup import warm_up


def test_warm_up_does_nothing_outside_a_preheated_kernel(monkeypatch) -> None:
    """In JupyterLab or a fresh Voilà kernel the warm-up returns at once."""
    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    assert warm_up() == 0.0
    monkeypatch.setenv("VOILA_PREHEAT", "False")
    assert warm_up() == 0.0


def test_warm_up_leaves_no_widget_thread_or_folder(monkeypatch, tmp_path) -> None:
    """A preheated kernel's warm-up builds a screen and closes every widget, thread and temp folder."""
    from ipywidgets.widgets.widget import _instances as open_widgets

    monkeypatch.setenv("VOILA_PREHEAT", "True")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    widgets, threads = set(open_widgets), threading.active_count()
    seconds = warm_up()
    assert seconds > 0
    assert set(open_widgets) <= widgets
    assert threading.active_count() <= threads
    assert list(Path(tmp_path).iterdir()) == []
