"""Keyboard shortcuts of the review screen, and how they are kept away from the comment box.

How ipyevents delivers keys (read from ipyevents 2.0.4's front end): an ``Event`` watching
``keydown`` on a source widget adds a document-level key listener while the mouse is over that
widget (and focuses it), removes the listener when the mouse leaves, and calls ``preventDefault``
on every key it forwards. Watching a box that contains the comment ``Textarea`` would therefore eat
the reviewer's typing. So:

1. The ``Event`` objects are attached only to key areas that contain no text input: the slice
   viewer with its slice controls, and the row of navigation and decision buttons. The comment box,
   the dataset dropdown and the patient list are outside every key area.
2. :func:`action_for` also ignores any key whose target is a text field (``TEXTAREA``, ``INPUT``,
   ``SELECT`` or an editable slider readout), any key with Ctrl/Alt/Meta held (browser shortcuts
   stay free) and auto-repeats of keys that save something.

The mapping is plain data, so the help line and the tests read the same table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

KEYMAP: dict[str, tuple[str, tuple[Any, ...]]] = {
    "a": ("decide", ("accept",)),
    "r": ("decide", ("reject",)),
    "f": ("decide", ("finetune",)),
    "u": ("decide", ("unclassified",)),
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
}
"""Key (``KeyboardEvent.key``, letters lower-case) -> (ReviewState method, arguments)."""

REPEATABLE = frozenset({"ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "n", "p"})
"""Keys whose auto-repeat (key held down) is honoured; holding "A" must not save again and again."""

TYPING_TAGS = frozenset({"TEXTAREA", "INPUT", "SELECT"})
"""Targets that take text: a key pressed there belongs to the field, never to a shortcut."""

HELP = (
    "Keys (mouse over the images or the buttons): A accept · R reject · F fine-tune · U unclassified"
    " · ←/→ slice · ↑/↓ or P/N patient · E/S phase · Space play/pause · J next undecided"
)
"""The help line shown under the screen."""


def normalise_key(key: str) -> str:
    """``"A"`` -> ``"a"``; named keys (``"ArrowLeft"``, ``" "``) unchanged."""
    return key.lower() if len(key) == 1 else key


def is_typing_target(event: Mapping[str, Any]) -> bool:
    """True when the key event comes from a text field (the comment box, a number box ...)."""
    target = event.get("target") or {}
    tag = str(target.get("tagName", "")).upper()
    classes = str(target.get("className", ""))
    return tag in TYPING_TAGS or "widget-readout" in classes


def action_for(event: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]] | None:
    """The (method, arguments) a key event asks for, or None when it must be ignored.

    Parameters
    ----------
    event : mapping
        An ipyevents key event: ``{"event": "keydown", "key": "a", "ctrlKey": False, ...,
        "target": {"tagName": "DIV", ...}}``. Only ``key`` is required.
    """
    kind = event.get("event", event.get("type", "keydown"))
    if kind != "keydown":
        return None
    if any(event.get(flag) for flag in ("ctrlKey", "altKey", "metaKey")):
        return None
    if is_typing_target(event):
        return None
    key = normalise_key(str(event.get("key", "")))
    if key not in KEYMAP:
        return None
    if event.get("repeat") and key not in REPEATABLE:
        return None
    return KEYMAP[key]


def attach_keys(sources: Iterable[Any], callback: Callable[[dict[str, Any]], None]) -> list[Any]:
    """Watch ``keydown`` on each widget of ``sources`` and send every event to ``callback``.

    Returns the ipyevents ``Event`` objects (keep them alive with the widget).
    """
    from ipyevents import Event

    events = []
    for source in sources:
        event = Event(
            source=source,
            watched_events=["keydown"],
            prevent_default_action=True,  # arrows and space must not scroll the page
            ignore_modifier_key_events=True,
        )
        event.on_dom_event(callback)
        events.append(event)
    return events
