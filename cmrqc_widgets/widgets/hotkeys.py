"""The page's keyboard, the comment autosave and the connection watch: one invisible anywidget.

Guarantees:

- **Keys work wherever the mouse is** and never while a text field has focus: one listener on the
  whole document (``hotkeys.js``) forwards shortcut keys to the kernel, skipping any key typed in a
  ``TEXTAREA``, a text ``INPUT`` or an editable element. Hovering moves no focus. The slice
  viewer also listens for the patient keys, by the same rule, to paint the next patient the kernel
  announced at once (issue 14, see ``slice_viewer.py``); the key reaches the kernel only from here.
- **Typed text is saved**: the comment box sends its text on every keystroke (a draft the kernel
  saves ~1 s after the typing pauses, see :class:`~.panels.DecisionBar`); the page also asks for
  it to be saved when the box is left (``Esc`` leaves it) and when the page is hidden or closed
  (``visibilitychange``, ``pagehide``). These "commit" messages carry the box's text and the case
  it was typed for, so they can neither overtake the typing nor land on another case.
- **A dead kernel is said, not hidden**: the page pings the kernel every :data:`PING_SECONDS`; with no
  answer for :data:`OFFLINE_SECONDS` it shows "Connection lost — your decisions up to 12:03:41 are
  saved; reload the page." and disables every control.
- **A tab replaced by a newer one says so**: when :attr:`KeyBridge.ended` is set (the server opened
  the reviewer's dashboard in another tab and is about to shut this kernel down, see
  :func:`~cmrqc_widgets.widgets.kernel.hand_over`), the page shows that sentence instead, disables
  every control for good and stops the heartbeat.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import traitlets

PING_SECONDS = 2.0
"""How often the page asks the kernel whether it is alive."""

OFFLINE_SECONDS = 12.0
"""Silence after which the kernel counts as lost: longer than any case load or 3D build on a busy
2-core server, so a slow kernel is never mistaken for a dead one."""


class KeyBridge(anywidget.AnyWidget):
    """Document-level keys, comment commits and the kernel heartbeat of the review screen.

    Parameters
    ----------
    on_key : callable
        Called with each forwarded key event, a dict:
        ``{"event": "keydown", "key": "a", "shiftKey": False, ..., "target": {"tagName": ...}}``.
    on_commit : callable
        Called with the comment box's text and the ``case_key`` it was typed for, when the page
        asks for it to be saved (box left, page hidden or closed).
    help_rows : list of (str, str)
        (keys, what they do): the rows of the ``?`` overlay.
    keys : list of str
        The shortcut keys the page forwards (``keys.forwarded_keys()``).
    """

    _esm = Path(__file__).with_name("hotkeys.js")
    _css = Path(__file__).with_name("screen.css")

    help_rows = traitlets.List(traitlets.List(traitlets.Unicode())).tag(sync=True)
    saved_at = traitlets.Unicode("").tag(sync=True)
    case_key = traitlets.Unicode("").tag(sync=True)
    """Which patient and phase the comment box shows; a commit names the case its text was typed for."""
    shortcut_keys = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Shortcut keys (``KeyboardEvent.key``, letters lower-case) the page forwards."""
    ping_ms = traitlets.Int(int(PING_SECONDS * 1000)).tag(sync=True)
    offline_ms = traitlets.Int(int(OFFLINE_SECONDS * 1000)).tag(sync=True)
    ended = traitlets.Unicode("").tag(sync=True)
    """Set once when this screen's session ended (another tab took over): shown, controls disabled."""

    def __init__(
        self,
        on_key: Callable[[dict[str, Any]], Any],
        on_commit: Callable[[str, str], Any],
        help_rows: list[tuple[str, str]],
        keys: list[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(help_rows=[list(row) for row in help_rows], shortcut_keys=list(keys), **kwargs)
        self._on_key = on_key
        self._on_commit = on_commit
        self.on_msg(self._receive)

    def show_keys(self) -> None:
        """Show (or hide) the keys overlay in the page."""
        with contextlib.suppress(Exception):
            self.send({"type": "help"})

    def _receive(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "ping":
            with contextlib.suppress(Exception):  # the page may be gone already
                self.send({"type": "pong"})
        elif kind == "key" and isinstance(content.get("event"), dict):
            self._on_key(content["event"])
        elif kind == "commit" and isinstance(content.get("text"), str):
            self._on_commit(content["text"], str(content.get("case", "")))
