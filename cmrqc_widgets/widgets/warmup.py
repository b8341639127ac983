"""Warming up a preheated Voilà kernel: pay the first-call costs before a reviewer arrives.

The first review screen a Python process builds takes about twice as long as the next ones
(lazily imported modules, first NIfTI read, first PNG, first pie chart, caches of numpy, PIL and
ipywidgets). A preheated kernel waits for its request anyway, so :func:`warm_up` builds one
screen then, on a tiny synthetic cohort in a temporary folder, and closes it. The reviewer's own
files are not touched: the screen the reviewer sees is built afresh after the request.
"""

from __future__ import annotations

import os
import tempfile
import time

from ipywidgets.widgets.widget import _instances as open_widgets  # Widget.widgets is deprecated

from ..demo import make_demo_cohort
from .review import ReviewWidget

__all__ = ["warm_up"]


def warm_up(force: bool = False) -> float:
    """Build and close one review screen on a tiny synthetic cohort; return the seconds it took.

    Does nothing (returns 0.0) outside a preheated Voilà kernel unless ``force`` is True: in
    JupyterLab or a fresh Voilà kernel it would only delay the screen.
    """
    if not force and os.environ.get("VOILA_PREHEAT") != "True":
        return 0.0
    started = time.perf_counter()
    before = set(open_widgets)
    # Built and closed at once: waiting for its background work (wait_idle) here would hold the
    # kernel's main thread, which that work hands its results to, and delay the reviewer's page.
    with tempfile.TemporaryDirectory(prefix="cmrqc-warmup-", ignore_cleanup_errors=True) as tmp:
        make_demo_cohort(tmp, "warmup", n_patients=2, shape=(64, 64, 6))
        screen = ReviewWidget(root=tmp, user="warmup", freeze_gc=False)
        screen.close()
        screen.state.cache.close()  # its reading thread (the state leaves a shared cache open)
    # Every part down to layouts and styles: a page connecting later would fetch every open widget.
    for key in set(open_widgets) - before:
        open_widgets[key].close()
    return time.perf_counter() - started
