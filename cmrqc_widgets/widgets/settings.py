"""The reviewer's view settings (a traits mixin of the review state) and the remembered session.

:class:`ViewSettings` holds what the reviewer sets for looking at a case: view, slice, overlay,
transparency, zoom, window/level, visible structures, play speed, the 3D panel. Its validators clamp
impossible values as ipywidgets' bounded sliders do. :func:`recall` and :func:`remember` keep the
last dataset and patient of a reviewer across sessions in a hidden file of their folder.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from traitlets import Bool, Float, HasTraits, Int, List, TraitError, Unicode, observe, validate

from ..names import STRUCTURES
from ..store.files import new_file_mode

VIEWS: tuple[str, ...] = ("sa", "hla", "vla")
"""Short axis, horizontal long axis, vertical long axis."""

SESSION_FILE = ".cmrqc-session"
"""Hidden file in the reviewer's folder remembering the last dataset and patient (not ``*.json``,
so it never shows up as a dataset)."""


class ViewSettings(HasTraits):
    """View, slice and display settings, validated (mixed into ``ReviewState``)."""

    view = Unicode("sa", help="One of VIEWS.")
    n_slices = Int(0, help="Slices of the current case in the current view (0 when none).")
    slice = Int(0, help="Current slice index (clamped).")
    playing = Bool(False, help="Playing through the slices (in the browser).")
    fps = Int(5, help="Play speed, 1-20 frames per second.")
    overlay = Bool(True, help="Colour overlay on the MRI.")
    contour = Bool(False, help="Overlay drawn as outlines instead of filled.")
    invert = Bool(False, help="Grey levels inverted.")
    mosaic = Bool(False, help="All short-axis slices of ED and ES at once (lightbox).")
    three_views = Bool(False, help="Short axis and both long axes side by side, with reference lines.")
    alpha = Float(0.4, help="Overlay opacity, 0-1.")
    zoom = Float(1.0, help="Zoom factor, 0.5-3.")
    window = List(Float(), default_value=[0.0, 255.0], help="[low, high] in 0..255 display units.")
    visible = List(Unicode(), default_value=list(STRUCTURES), help="Structures shown.")
    show_3d = Bool(False, help="3D panel expanded.")

    @validate("slice")
    def _clamp_slice(self, proposal: Any) -> int:
        return int(min(max(int(proposal.value), 0), max(self.n_slices - 1, 0)))

    @validate("view")
    def _check_view(self, proposal: Any) -> str:
        if proposal.value not in VIEWS:
            raise TraitError(f"View {proposal.value!r} is not one of {list(VIEWS)}.")
        return proposal.value

    @validate("fps")
    def _clamp_fps(self, proposal: Any) -> int:
        return int(min(max(int(proposal.value), 1), 20))

    @validate("alpha")
    def _clamp_alpha(self, proposal: Any) -> float:
        return float(min(max(float(proposal.value), 0.0), 1.0))

    @validate("zoom")
    def _clamp_zoom(self, proposal: Any) -> float:
        return float(min(max(float(proposal.value), 0.5), 3.0))

    @validate("window")
    def _check_window(self, proposal: Any) -> list[float]:
        value = [float(v) for v in proposal.value]
        if len(value) != 2:
            raise TraitError(f"The window must be [low, high], not {value!r}.")
        low, high = (min(max(v, 0.0), 255.0) for v in value)
        if high <= low:
            raise TraitError(f"The window high ({high}) must be above its low ({low}).")
        return [low, high]

    @validate("visible")
    def _check_visible(self, proposal: Any) -> list[str]:
        unknown = [name for name in proposal.value if name not in STRUCTURES]
        if unknown:
            raise TraitError(f"Unknown structures {unknown}; use names from {list(STRUCTURES)}.")
        return [name for name in STRUCTURES if name in proposal.value]

    @observe("mosaic", "three_views")
    def _one_whole_heart_mode(self, change: Any) -> None:
        # Mosaic and three views share the panels: turning one on turns the other off.
        if change.new:
            other = "three_views" if change.name == "mosaic" else "mosaic"
            setattr(self, other, False)

    def toggle_mosaic(self) -> None:
        """All short-axis slices of ED and ES at once, or back to one slice."""
        self.mosaic = not self.mosaic

    def toggle_three_views(self) -> None:
        """Short axis and both long axes side by side, or back to one view."""
        self.three_views = not self.three_views

    def toggle_invert(self) -> None:
        """Invert the grey levels, or back."""
        self.invert = not self.invert

    def toggle_contour(self) -> None:
        """Overlay as outlines, or filled again."""
        self.contour = not self.contour

    def step_slice(self, delta: int) -> None:
        """Move ``delta`` slices (clamped at both ends, no wrap)."""
        self.slice = self.slice + int(delta)


PERSISTED: tuple[str, ...] = (
    "advance",
    "overlay",
    "contour",
    "mosaic",
    "three_views",
    "invert",
    "alpha",
    "zoom",
    "fps",
    "visible",
    "show_3d",
)
"""Settings of a reviewer remembered across reloads (the window follows each case instead)."""


def _read(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((Path(folder) / SESSION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(folder: Path, **changes: Any) -> None:
    folder = Path(folder)
    if not folder.is_dir():
        return
    data = {**_read(folder), **changes}
    path = folder / SESSION_FILE
    with contextlib.suppress(OSError):
        new = not path.exists()
        path.write_text(json.dumps(data), encoding="utf-8")
        if new:  # private like the reviewer's data files (the umask would leave it 0644)
            os.chmod(path, new_file_mode(folder))


def recall(folder: Path) -> dict[str, str]:
    """The remembered ``{"dataset": ..., "patient": ...}`` of the reviewer's ``folder`` (or {})."""
    data = _read(folder)
    return {k: str(data[k]) for k in ("dataset", "patient") if k in data}


def remember(folder: Path, dataset: str, patient: str) -> None:
    """Remember ``dataset`` and ``patient`` in ``folder`` (only if it exists; failures ignored)."""
    _write(folder, dataset=dataset, patient=patient)


def recall_settings(folder: Path) -> dict[str, Any]:
    """The remembered display settings (names in :data:`PERSISTED`) of the reviewer's ``folder``."""
    settings = _read(folder).get("settings")
    if not isinstance(settings, dict):
        return {}
    return {k: v for k, v in settings.items() if k in PERSISTED}


def remember_settings(folder: Path, settings: dict[str, Any]) -> None:
    """Remember the display ``settings`` in ``folder`` (only if it exists; failures ignored)."""
    _write(folder, settings={k: v for k, v in settings.items() if k in PERSISTED})
