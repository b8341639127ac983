"""3D panel: the labelled voxels as boxes at their physical spacing, coloured by structure.

Cost control, because 50,000 ``box`` markers rotate at ~1.5 frames/s under software WebGL:

- collapsed (the default) the panel costs nothing: no point extraction, and ipyvolume (about
  1.7 s to import) is not even imported until the reviewer first presses "Show 3D";
- the points are updated when the patient or phase changes, never on a slice change, and are
  usually extracted ahead by the prefetch (:meth:`Volume3DPanel.points_for` in the background);
- one ``Scatter`` per structure with one solid colour, so only coordinates travel (float32).

Points are drawn in the frame of the short-axis view (x across the screen as the 2D columns run,
y up, z toward the viewer; :func:`~cmrqc_widgets.render.orientation.screen_frame`), so the default
camera shows the heart as the 2D panel does, with the same handedness (the RV on the same side),
and the axes are labelled with the patient directions they run between ("R → L", "P → A", ...).

The figure is built explicitly (``Figure(scatters=[Scatter(...)])``), never through the global
current figure of ``ipyvolume.pylab``; the marker is ``box`` because the 2D markers of
ipyvolume 0.6.3 draw nothing. Two more traps of ipyvolume 0.6.3, seen in Chromium under Voilà:
a ``Scatter`` shown with empty arrays never draws later data, and setting ``visible=False`` on a
shown scatter blanks the whole figure. So a scatter is created only with points, absent or hidden
structures are left out of ``figure.scatters`` (an invisible one-point placeholder stands in when
nothing is left: an empty list leaves stale points on screen), and ``visible`` is never touched.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from ipywidgets import HTML, Layout, ToggleButton, VBox

from ..names import STRUCTURE_COLOURS, STRUCTURES
from ..render.orientation import axis_labels, screen_frame
from ..render.points import case_points

DEFAULT_CAP = 50_000
"""Most points drawn (a deterministic, per-structure proportional subsample beyond)."""

MARKER = "box"


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@dataclass(frozen=True)
class Drawing:
    """Everything the 3D panel needs to draw one case, computed off the main thread.

    Attributes
    ----------
    parts : dict
        Structure -> (x, y, z) contiguous float32 arrays in mm, in the short-axis view's frame
        (only structures with points).
    limits : tuple
        (low, high) of the x, y and z axes: a cube around the points.
    size : float
        Marker size: about one voxel, a little larger when subsampled so surfaces stay closed.
    status : str
        HTML line: points drawn of labelled voxels, per structure.
    axes : tuple of str
        Labels of the x, y and z axes: the patient directions they run between.
    """

    parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    limits: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    size: float
    status: str
    axes: tuple[str, str, str] = ("x", "y", "z")


def prepare_drawing(case: Any, cap: int = DEFAULT_CAP) -> Drawing:
    """The :class:`Drawing` of ``case`` with at most ``cap`` points."""
    points = case_points(case, cap=cap)
    frame = screen_frame(case.affine)
    xyz = (points.xyz.astype(np.float64) @ frame.T).astype(np.float32)
    if len(xyz):
        low, high = xyz.min(axis=0), xyz.max(axis=0)
    else:
        low, high = np.zeros(3, np.float32), np.ones(3, np.float32)
    centre = (low + high) / 2
    half = float(max((high - low).max(), 1.0)) * 0.55
    total = sum(points.counts.values())
    voxel = float(np.mean(case.spacing[1:]))
    fill = (total / max(len(xyz), 1)) ** (1 / 3) if total else 1.0
    size = float(np.clip(100 * voxel * fill / (2 * half), 0.2, 4.0))
    parts = {}
    for index, name in enumerate(STRUCTURES):
        part = xyz[points.structure == index]
        if len(part):
            parts[name] = tuple(np.ascontiguousarray(part[:, k], dtype=np.float32) for k in range(3))
    counts = ", ".join(f"{name} {points.counts.get(name, 0):,}" for name in STRUCTURES)
    shown = f"{len(xyz):,} of {total:,} voxels drawn" if total > len(xyz) else f"{total:,} voxels"
    x, y, z = ((float(c - half), float(c + half)) for c in centre)
    axes = axis_labels(case.affine)
    return Drawing(parts, (x, y, z), size, f"<small>{shown} ({counts})</small>", axes)


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
        How many times new points were drawn (tests check that slice moves never do it).
    """

    def __init__(
        self,
        cap: int = DEFAULT_CAP,
        size: int = 340,
        expanded: bool = False,
        guard: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> None:
        guard = guard or (lambda f: f)
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
        self._points: Any = None
        self._message = ""
        self._drawn: Any = None
        self._visible: list[str] = list(STRUCTURES)
        self._present: set[str] = set()
        self._placeholder: Any = None
        self._body = VBox([], layout=Layout(min_width=f"{size}px", min_height="0px"))
        self.on_build: Callable[[], None] | None = None  # called once ipyvolume is imported and built
        self.provider: Callable[[Any], Drawing | None] = self.points_for
        """Where the drawing of a case comes from when not given (the review state's preparation,
        which fails the whole case, not just this panel, when the points cannot be made)."""
        super().__init__(
            [self.toggle, self.status, self._body],
            layout=Layout(flex="0 0 auto", min_width=f"{size}px"),
            **kwargs,
        )
        self.add_class("cmrqc-volume3d")
        self.toggle.observe(guard(self._on_toggle), "value")
        self.toggle.value = expanded

    @property
    def expanded(self) -> bool:
        """Whether the 3D view is shown."""
        return bool(self.toggle.value)

    def show_case(self, case: Any, message: str = "", points: Drawing | None = None) -> None:
        """Show ``case`` (or ``message`` when it is None); points are computed only when expanded.

        ``points`` is :meth:`points_for` of ``case`` when already prepared (by the prefetch).
        """
        self._case = case
        self._points = points
        self._message = message
        if self.expanded:
            self._draw()
        else:
            self.status.value = ""

    def points_for(self, case: Any) -> Drawing:
        """What this panel draws for ``case`` (thread-safe: the prefetch calls it)."""
        return prepare_drawing(case, cap=self.cap)

    def set_visible(self, structures: list[str]) -> None:
        """Show only ``structures`` (cheap: changes the figure's scatter list, no new points)."""
        self._visible = list(structures)
        if self.figure is not None and self._drawn is not None:
            self._update_scatter_list()

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

        one = np.zeros(1, np.float32)
        self._placeholder = ipyvolume.Scatter(
            x=one,
            y=one,
            z=one,
            color="#ffffff",
            color_selected="#ffffff",
            size=0.0,
            size_selected=0.0,
            geo=MARKER,
        )
        self.figure = ipyvolume.Figure(scatters=[self._placeholder], width=self.size, height=self.size)
        self.figure.xlabel, self.figure.ylabel, self.figure.zlabel = "x", "y", "z"  # until a case comes
        if self.on_build is not None:
            self.on_build()

    def _scatter(self, name: str, part: tuple[np.ndarray, np.ndarray, np.ndarray], size: float) -> Any:
        """A new scatter of structure ``name`` holding ``part``.

        New rather than updated in place: ipyvolume 0.6.3 tweens old to new coordinates and, when
        the number of points changes, leaves stray markers of the previous case on screen.
        """
        import ipyvolume

        colour = _hex(STRUCTURE_COLOURS[name])
        x, y, z = part
        return ipyvolume.Scatter(
            x=x,
            y=y,
            z=z,
            color=colour,
            # Explicit: the default "green" is held as a 0-d numpy array that cannot be sent
            # over a real comm (ValueError "Can't clean for JSON") in ipyvolume 0.6.3.
            color_selected=colour,
            size=size,
            size_selected=size,
            geo=MARKER,
            description=name,
        )

    def _update_scatter_list(self) -> None:
        shown = [self.scatters[n] for n in STRUCTURES if n in self._present and n in self._visible]
        # An empty scatter list leaves the last points on screen in ipyvolume 0.6.3 (and a figure
        # re-attached to the page draws garbage): show one invisible point instead.
        shown = shown or [self._placeholder]
        if list(self.figure.scatters) != shown:
            self.figure.scatters = shown

    def _draw(self) -> None:
        if self._case is None:
            self._drawn = None
            self._present = set()
            self._update_scatter_list()
            self.status.value = f"<i>{html.escape(self._message)}</i>" if self._message else "<i>No case.</i>"
            return
        if self._case is self._drawn:
            return
        case = self._case
        drawing = self._points if self._points is not None else self.provider(case)
        self._points = None
        if drawing is None or self._case is not case:
            return  # the provider failed the case and the panel already shows why
        self.n_point_updates += 1
        self._drawn = case
        with self.figure.hold_sync():
            for axis, limits, label in zip("xyz", drawing.limits, drawing.axes, strict=True):
                setattr(self.figure, f"{axis}lim", limits)
                setattr(self.figure, f"{axis}label", label)
            old = self.scatters
            size = drawing.size
            self.scatters = {name: self._scatter(name, part, size) for name, part in drawing.parts.items()}
            self._present = set(self.scatters)
            self._update_scatter_list()
        for scatter in old.values():
            _close_scatter(scatter)
        self.status.value = drawing.status


def _close_scatter(scatter: Any) -> None:
    """Close a scatter and the two shader materials it created (they would stay open otherwise)."""
    materials = [getattr(scatter, name, None) for name in ("material", "line_material")]
    scatter.close()
    for material in materials:
        if material is not None:
            material.close()
