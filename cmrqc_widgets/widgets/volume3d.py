"""3D panel: the labelled voxels as boxes at their physical spacing, coloured by structure.

Cost control, because 50,000 ``box`` markers rotate at ~1.5 frames/s under software WebGL:

- collapsed (the default) the panel costs nothing: no point extraction, and ipyvolume (about
  1.7 s to import) is not even imported until the reviewer first presses "Show 3D";
- the points are updated when the patient or phase changes, never on a slice change, and are
  usually extracted ahead by the prefetch (:meth:`Volume3DPanel.points_for` in the background);
- one ``Scatter`` per structure with one solid colour, so only coordinates travel (float32);
- the current 2D slice is a translucent quad (one ``Mesh`` of two triangles, around the heart)
  built once per case and view; a slice move only changes its three offsets (a uniform in the
  browser), never the points.

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

Without WebGL (virtual desktops without a GPU often switch it off) ipyvolume draws a red
"Click to show javascript error." box. A tiny invisible probe (:class:`WebGLCheck`) asks the
browser first; when it says no, the toggle is disabled and one sentence says why, and the 2D
review goes on untouched.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import anywidget
import numpy as np
from ipywidgets import HTML, Layout, ToggleButton, VBox
from traitlets import Bool

from ..names import STRUCTURE_COLOURS, STRUCTURES
from ..render.points import VIEW_AXES
from ..render.scene import DEFAULT_CAP, PLANE_MARGIN, Drawing, prepare_drawing
from .kernel import kernel_scheduler

__all__ = [
    "DEFAULT_CAP",
    "NO_WEBGL",
    "PLANE_MARGIN",
    "Drawing",
    "Volume3DPanel",
    "WebGLCheck",
    "prepare_drawing",
]

MARKER = "box"

PLANE_RGBA = (1.0, 0.85, 0.0, 0.3)
"""Colour of the plane marking the current slice: translucent yellow, no structure's colour."""

PLANE_INTERVAL = 0.25
"""Most one plane move per this many seconds (in a kernel): each move redraws the whole 3D view in
the browser, which play at 20 frames/s must not pay for every slice."""

NO_WEBGL = "3D needs WebGL, which this browser has switched off; the 2D review works as usual."
"""What the 3D panel says instead of drawing when the browser has no WebGL."""


class WebGLCheck(anywidget.AnyWidget):
    """Invisible probe: ``webgl`` is whether the browser showing it can draw WebGL (None: not shown yet)."""

    _esm = """
    function render({ model, el }) {
      el.style.display = 'none';
      let ok = false;
      try {
        const canvas = document.createElement('canvas');
        ok = Boolean(canvas.getContext('webgl2') || canvas.getContext('webgl'));
      } catch (e) {}
      if (model.get('webgl') !== ok) { model.set('webgl', ok); model.save_changes(); }
    }
    export default { render };
    """
    webgl = Bool(None, allow_none=True).tag(sync=True)


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
        How many times new points were drawn (tests check that slice moves never do it).
    plane : ipyvolume.Mesh or None
        The translucent quad at the current 2D slice (its offsets follow the slice).
    webgl_check : WebGLCheck
        Whether the browser can draw 3D at all; without WebGL the toggle is disabled.
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
        self.plane: Any = None
        self._slice: tuple[str, int] = ("sa", 0)
        self._plane_for: tuple[Any, str] | None = None  # (drawing, view) the plane was built for
        self._drawing: Drawing | None = None
        self._schedule = kernel_scheduler()  # None outside a kernel: the plane then moves at once
        self._plane_pending = False
        self._body = VBox([], layout=Layout(min_width=f"{size}px", min_height="0px"))
        self.webgl_check = WebGLCheck()
        self.on_build: Callable[[], None] | None = None  # called once ipyvolume is imported and built
        self.provider: Callable[[Any], Drawing | None] = self.points_for
        """Where the drawing of a case comes from when not given (the review state's preparation,
        which fails the whole case, not just this panel, when the points cannot be made)."""
        super().__init__(
            [self.toggle, self.status, self._body, self.webgl_check],
            layout=Layout(flex="0 0 auto", min_width=f"{size}px"),
            **kwargs,
        )
        self.add_class("cmrqc-volume3d")
        self.toggle.observe(guard(self._on_toggle), "value")
        self.webgl_check.observe(guard(self._on_webgl), "webgl")
        self.toggle.value = expanded

    @property
    def expanded(self) -> bool:
        """Whether the 3D view is shown."""
        return bool(self.toggle.value) and self.webgl_check.webgl is not False

    @property
    def drawn(self) -> Any:
        """The case whose points are on screen (None when none)."""
        return self._drawn

    def show_case(self, case: Any, message: str = "", points: Drawing | None = None) -> None:
        """Show ``case`` (or ``message`` when it is None); points are computed only when expanded.

        ``points`` is :meth:`points_for` of ``case`` when already prepared (by the prefetch).
        """
        self._case = case
        self._points = points
        self._message = message
        if self.expanded:
            self._draw()
        elif self.webgl_check.webgl is not False:
            self.status.value = ""

    def points_for(self, case: Any) -> Drawing:
        """What this panel draws for ``case`` (thread-safe: the prefetch calls it)."""
        return prepare_drawing(case, cap=self.cap)

    def show_slice(self, view: str, index: int) -> None:
        """Mark slice ``index`` of ``view`` (cheap: a slice move sends three numbers, no points)."""
        self._slice = (view, int(index))
        if self.figure is None or self._drawing is None or not self.expanded or self._plane_pending:
            return
        if self._schedule is None:
            self._update_plane()
        else:  # the first move now, then at most one per PLANE_INTERVAL (the last one always lands)
            self._update_plane()
            self._plane_pending = True
            self._schedule(self._plane_due, PLANE_INTERVAL)

    def _plane_due(self) -> None:
        self._plane_pending = False
        if self.figure is not None and self._drawing is not None and self.expanded:
            self._update_plane()  # moves only if the slice changed meanwhile

    def set_visible(self, structures: list[str]) -> None:
        """Show only ``structures`` (cheap: changes the figure's scatter list, no new points)."""
        self._visible = list(structures)
        if self.figure is not None and self._drawn is not None:
            self._update_scatter_list()

    def sync_widgets(self) -> list[Any]:
        """Widgets whose updates should be batched with a patient switch."""
        return [self.toggle, self.status, self._body, *self.scatters.values()] + [
            w for w in (self.figure, self.plane) if w is not None
        ]

    # ------------------------------------------------------------------------------------------
    def _on_webgl(self, change: Any) -> None:
        if change.new is False:
            self.toggle.disabled = True
            self.toggle.tooltip = NO_WEBGL
            self._body.children = ()
            self.status.value = f"<small class='cmrqc-no-webgl'>{html.escape(NO_WEBGL)}</small>"

    def _on_toggle(self, change: Any) -> None:
        if self.webgl_check.webgl is False:  # the toggle is disabled; a crafted client still lands here
            return
        if change.new:
            self.toggle.description = "Hide 3D"
            if self.figure is not None:  # shown again, ipyvolume 0.6.3 paints a colour gradient
                self._discard_figure()
            self._build()
            self._body.children = (self.figure,)
            self._draw()
        else:
            self.toggle.description = "Show 3D"
            self._body.children = ()
            self.status.value = ""

    def _discard_figure(self) -> None:
        """Close the figure and everything in it (a new one is built and drawn on the next show)."""
        for widget in [*self.scatters.values(), self.plane, self._placeholder]:
            if widget is not None:
                _close_scatter(widget)
        self.figure.close()
        self.figure = self.plane = self._placeholder = self._drawn = self._drawing = self._plane_for = None
        self.scatters, self._present = {}, set()

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
            self._drawing = None
            self._present = set()
            self._update_scatter_list()
            if self.figure.meshes:
                self.figure.meshes = []
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
        self._drawing = drawing
        with self.figure.hold_sync():
            for axis, limits, label in zip("xyz", drawing.limits, drawing.axes, strict=True):
                setattr(self.figure, f"{axis}lim", limits)
                setattr(self.figure, f"{axis}label", label)
            old = self.scatters
            size = drawing.size
            self.scatters = {name: self._scatter(name, part, size) for name, part in drawing.parts.items()}
            self._present = set(self.scatters)
            self._update_scatter_list()
            self._update_plane()
        for scatter in old.values():
            _close_scatter(scatter)
        self.status.value = drawing.status

    def _update_plane(self) -> None:
        """Build the slice plane for this case and view if needed, then move it to the slice."""
        import ipyvolume

        view, index = self._slice
        drawing = self._drawing
        if drawing is None or view not in VIEW_AXES:
            return
        corners, shift = drawing.plane(view, index)
        if self._plane_for is None or self._plane_for[0] is not drawing or self._plane_for[1] != view:
            old = self.plane
            self.plane = ipyvolume.Mesh(
                x=corners[:, 0],
                y=corners[:, 1],
                z=corners[:, 2],
                triangles=np.array([[0, 1, 2], [0, 2, 3]], np.uint32),
                color=np.tile(np.float32(PLANE_RGBA), (4, 1)),
                description="slice",
            )
            self.plane.material.transparent = True
            self._plane_for = (drawing, view)
            self.figure.meshes = [self.plane]
            if old is not None:
                _close_scatter(old)
        offsets = tuple(float(v) for v in shift)
        if (self.plane.x_offset, self.plane.y_offset, self.plane.z_offset) != offsets:
            with self.plane.hold_sync():
                self.plane.x_offset, self.plane.y_offset, self.plane.z_offset = offsets


def _close_scatter(scatter: Any) -> None:
    """Close a scatter (or mesh) and the two shader materials it created (they would stay open otherwise)."""
    materials = [getattr(scatter, name, None) for name in ("material", "line_material")]
    scatter.close()
    for material in materials:
        if material is not None:
            material.close()
