"""Keyboard shortcuts of the review screen: the key table, the help rows and the safety rules.

The browser side (:mod:`~cmrqc_widgets.widgets.hotkeys`) listens on the whole document, so keys
work wherever the mouse is, and it never forwards a key typed in a text field. :func:`action_for`
checks again in the kernel: a key is ignored when its target is a text field (``TEXTAREA``, a text
``INPUT``, an editable slider readout), when Ctrl/Alt/Meta is held (browser shortcuts stay free;
Ctrl+Z is our undo), and when it is the auto-repeat of a key that saves something.

The mapping is plain data, so the ``?`` overlay, the help line and the tests read the same table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KEYMAP: dict[str, tuple[str, tuple[Any, ...]]] = {
    "a": ("decide_by_key", ("accept",)),
    "r": ("decide_by_key", ("reject",)),
    "f": ("decide_by_key", ("finetune",)),
    "u": ("decide_by_key", ("unclassified",)),
    "z": ("undo", ()),
    "ArrowLeft": ("step_slice", (-1,)),
    "ArrowRight": ("step_slice", (+1,)),
    "ArrowUp": ("prev_patient", ()),
    "ArrowDown": ("next_patient", ()),
    "p": ("prev_patient", ()),
    "n": ("next_patient", ()),
    "e": ("set_phase", ("ED",)),
    "s": ("set_phase", ("ES",)),
    " ": ("toggle_play", ()),
    "j": ("next_undecided", ()),
    "o": ("toggle_overlay", ()),
    "l": ("toggle_contour", ()),
    "m": ("toggle_mosaic", ()),
    "v": ("toggle_three_views", ()),
    "i": ("toggle_invert", ()),
}
"""Key (``KeyboardEvent.key``, letters lower-case) -> (ReviewState method, arguments)."""

SHIFTED: dict[str, tuple[str, tuple[Any, ...]]] = {
    "a": ("accept_both_and_next", ()),
}
"""Keys with Shift held that mean something else than without."""

REPEATABLE = frozenset({"ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "n", "p"})
"""Keys whose auto-repeat (key held down) is honoured; holding "A" must not save again and again."""

TYPING_TAGS = frozenset({"TEXTAREA", "INPUT"})
"""Targets that take text: a key pressed there belongs to the field, never to a shortcut."""

NON_TEXT_INPUTS = frozenset({"checkbox", "radio", "range", "button", "submit", "reset", "color", "file"})
"""``INPUT`` types that take no text (a key there may be a shortcut)."""

HELP_ROWS: list[tuple[str, str]] = [
    ("A · R · F · U", "accept · reject · fine-tune · unclassified, then the next undecided phase"),
    ("Shift+A", "accept both phases of this patient, then the next undecided patient"),
    ("Z or Ctrl+Z", "undo the last decision (back to its case; the history keeps both)"),
    ("C", "write a comment (saved as you type); Esc leaves the box"),
    ("← →", "previous / next slice"),
    ("↑ ↓ or P N", "previous / next patient"),
    ("E · S", "end-diastole · end-systole"),
    ("J", "next patient or phase without a decision"),
    ("Space", "play / pause the slices"),
    ("O · L", "overlay on / off · overlay as outlines / filled"),
    ("M", "mosaic: every short-axis slice of ED and ES side by side / one slice"),
    ("V", "three views: short axis and both long axes with reference lines / one view"),
    ("I", "invert the grey levels"),
    ("drag", "left: pan the zoomed image · right (or Shift): window / level"),
    ("?", "show / hide this list"),
]
"""(keys, what they do): the ``?`` overlay."""

HELP = (
    "Keys (anywhere but a text box): A/R/F/U decide and go on · Shift+A accept both phases · Z undo"
    " · C comment, Esc leaves it · ←/→ slice · ↑/↓ or P/N patient · E/S phase · J next undecided"
    " · Space play · O overlay · L outlines · M mosaic · V three views · I invert · ? all keys"
)
"""The help line shown under the screen."""


def normalise_key(key: str) -> str:
    """``"A"`` -> ``"a"``; named keys (``"ArrowLeft"``, ``" "``) unchanged."""
    return key.lower() if len(key) == 1 else key


def forwarded_keys() -> list[str]:
    """Every key the page must forward to the kernel (the rest stay in the browser)."""
    return sorted({*KEYMAP, *SHIFTED})


def patient_move_keys() -> dict[str, list[str]]:
    """``{"next": [...], "prev": [...]}``: the keys of ``next_patient`` and ``prev_patient``.

    The slice viewer paints the case the kernel announced for these keys at once (issue 14).
    """
    moves = {"next": "next_patient", "prev": "prev_patient"}
    return {
        move: sorted(key for key, (name, _) in KEYMAP.items() if name == method)
        for move, method in moves.items()
    }


def is_typing_target(event: Mapping[str, Any]) -> bool:
    """True when the key event comes from a text field (the comment box, a number box ...)."""
    target = event.get("target") or {}
    tag = str(target.get("tagName", "")).upper()
    classes = str(target.get("className", ""))
    if tag == "INPUT":
        return str(target.get("type", "") or "text").lower() not in NON_TEXT_INPUTS
    return tag in TYPING_TAGS or "widget-readout" in classes


def action_for(event: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]] | None:
    """The (method, arguments) a key event asks for, or None when it must be ignored.

    Parameters
    ----------
    event : mapping
        A key event as the page forwards it: ``{"event": "keydown", "key": "a", "ctrlKey": False,
        ..., "target": {"tagName": "DIV", ...}}``. Only ``key`` is required.
    """
    kind = event.get("event", event.get("type", "keydown"))
    if kind != "keydown" or is_typing_target(event):
        return None
    key = normalise_key(str(event.get("key", "")))
    command = event.get("ctrlKey") or event.get("metaKey")
    if command and key == "z" and not event.get("altKey"):
        return None if event.get("repeat") else KEYMAP["z"]
    if command or event.get("altKey"):
        return None
    table = SHIFTED if event.get("shiftKey") and key in SHIFTED else KEYMAP
    if key not in table:
        return None
    if event.get("repeat") and key not in REPEATABLE:
        return None
    return table[key]
