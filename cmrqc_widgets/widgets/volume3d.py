"""3D panel: the labelled voxels as boxes at their physical spacing, coloured by structure.

Cost control, because 50,000 ``box`` markers rotate at ~1.5 frames/s under software WebGL:

- collapsed (the default) the panel costs nothing: no point extraction, and ipyvolume (about
  1.7 s to import) is not even imported until the reviewer first presses "Show 3D";
- the points are updated when the patient or phase changes, never on a slice change;
- one ``Scatter`` per structure with one solid colour, so only coordinates travel (float32).

The figure is built explicitly (``Figure(scatters=[Scatter(...)])``), never through the global
current figure of ``ipyvolume.pylab``; the marker is ``box`` because the 2D markers of
ipyvolume 0.6.3 draw nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ipywidgets import HTML, Layout, ToggleButton, VBox

from ..names import STRUCTURE_COLOURS, STRUCTURES
from ..points import case_points

DEFAULT_CAP = 50_000
"""Most points drawn (a deterministic, per-structure proportional subsample beyond)."""

MARKER = "box"


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


class Volume3DPanel(VBox):
    """Collapsible ipyvolume view of the current case's labels.

    Parameters
    ----------
    cap : int
        Most points drawn.
    size : int
        Width and height of the 3D canvas in pixels.
    expanded : bool
        Start expanded.

    Attributes
    ----------
    toggle : ipywidgets.ToggleButton
        "Show 3D"; its value is the expanded state.
    figure : ipyvolume.Figure or None
        Built on first expansion.
    scatters : dict[str, ipyvolume.Scatter]
        One per structure.
    n_point_updates : int
        How many times points were extracted (tests check that slice moves never do it).
    """

    def __init__(
        self, cap: int = DEFAULT_CAP, size: int = 380, expanded: bool = False, **kwargs: Any
    ) -> None:
        self.cap = cap
        self.size = size
        self.toggle = ToggleButton(
            value=False, description="Show 3D", icon="cube", tooltip="The labels in 3D: rotate, pan, zoom"
        )
        self.status = HTML("")
        self.figure: Any = None
        self.scatters: dict[str, Any] = {}
        self.n_point_updates = 0
        self._case: Any = None
        self._message = ""
        self._drawn: Any = None
        self._visible: list[str] = list(STRUCTURES)
        self._body = VBox([], layout=Layout(min_width=f"{size}px", min_height="0px"))
        super().__init__(
            [self.toggle, self.status, self._body],
            layout=Layout(flex="0 0 auto", min_width=f"{size}px"),
            **kwargs,
        )
        self.add_class("cmrqc-volume3d")
        self.toggle.observe(self._on_toggle, "value")
        self.toggle.value = expanded

    @property
    def expanded(self) -> bool:
        """Whether the 3D view is shown."""
        return bool(self.toggle.value)

    def show_case(self, case: Any, message: str = "") -> None:
        """Show ``case`` (or ``message`` when it is None); points are computed only when expanded."""
        self._case = case
        self._message = message
        if self.expanded:
            self._draw()
        else:
            self.status.value = ""

    def set_visible(self, structures: list[str]) -> None:
        """Show only ``structures`` (cheap: toggles the scatters, no new points)."""
        self._visible = list(structures)
        for name, scatter in self.scatters.items():
            scatter.visible = name in self._visible

    def sync_widgets(self) -> list[Any]:
        """Widgets whose updates should be batched with a patient switch."""
        return [self.toggle, self.status, self._body, *self.scatters.values()] + (
            [self.figure] if self.figure is not None else []
        )

    # ------------------------------------------------------------------------------------------
    def _on_toggle(self, change: Any) -> None:
        if change.new:
            self.toggle.description = "Hide 3D"
            self._build()
            self._body.children = (self.figure,)
            self._draw()
        else:
            self.toggle.description = "Show 3D"
            self._body.children = ()
            self.status.value = ""

    def _build(self) -> None:
        if self.figure is not None:
            return
        import ipyvolume

        empty = np.zeros(0, np.float32)
        self.scatters = {
            name: ipyvolume.Scatter(
                x=empty,
                y=empty,
                z=empty,
                color=_hex(STRUCTURE_COLOURS[name]),
                geo=MARKER,
                size=1.0,
                visible=False,
                description=name,
            )
            for name in STRUCTURES
        }
        self.figure = ipyvolume.Figure(
            scatters=list(self.scatters.values()),
            width=self.size,
            height=self.size,
            animation=0.0,  # no tween between patients: jump straight to the new points
        )
        self.figure.xlabel, self.figure.ylabel, self.figure.zlabel = "x (mm)", "y (mm)", "z (mm)"

    def _draw(self) -> None:
        if self._case is None:
            self._drawn = None
            for scatter in self.scatters.values():
                scatter.visible = False
            self.status.value = f"<i>{self._message}</i>" if self._message else "<i>No case.</i>"
            return
        if self._case is self._drawn:
            return
        points = case_points(self._case, cap=self.cap)
        self.n_point_updates += 1
        self._drawn = self._case
        xyz = points.xyz.astype(np.float32, copy=False)
        if len(xyz):
            low, high = xyz.min(axis=0), xyz.max(axis=0)
        else:
            low, high = np.zeros(3, np.float32), np.ones(3, np.float32)
        centre = (low + high) / 2
        half = float(max((high - low).max(), 1.0)) * 0.55
        total = sum(points.counts.values())
        # Markers sized like one voxel, grown a little when subsampled so the surface stays closed.
        voxel = float(np.mean(self._case.spacing[1:]))
        fill = (total / max(len(xyz), 1)) ** (1 / 3) if total else 1.0
        size = float(np.clip(100 * voxel * fill / (2 * half), 0.2, 4.0))
        with self.figure.hold_sync():
            for axis, c in zip("xyz", centre, strict=True):
                setattr(self.figure, f"{axis}lim", (float(c - half), float(c + half)))
            for name, scatter in self.scatters.items():
                part = points.for_structure(name)
                with scatter.hold_sync():
                    scatter.x, scatter.y, scatter.z = (np.ascontiguousarray(part[:, k]) for k in range(3))
                    scatter.size = size
                    scatter.visible = bool(len(part)) and name in self._visible
        counts = ", ".join(f"{name} {points.counts.get(name, 0):,}" for name in STRUCTURES)
        shown = f"{len(xyz):,} of {total:,} voxels drawn" if total > len(xyz) else f"{total:,} voxels"
        self.status.value = f"<small>{shown} ({counts})</small>"
