"""Slice and display controls: slider, prev/next, play, view, overlay, transparency, zoom, window.

Every control is linked to a trait of :class:`~cmrqc_widgets.widgets.state.ReviewState` with
``traitlets.link`` (two-way) or ``dlink``; buttons call one state method.
"""

from __future__ import annotations

from typing import Any

from ipywidgets import (
    HTML,
    Button,
    Checkbox,
    Dropdown,
    FloatRangeSlider,
    HBox,
    IntSlider,
    Layout,
    ToggleButton,
    ToggleButtons,
    VBox,
)
from traitlets import dlink, link

from ..names import STRUCTURE_COLOURS, STRUCTURES

STRUCTURE_NAMES = {"LV": "LV blood pool", "RV": "RV blood pool", "MYO": "Myocardium"}


def _swatch(name: str) -> str:
    r, g, b = STRUCTURE_COLOURS[name]
    return (
        f'<span style="display:inline-block;width:0.9em;height:0.9em;background:rgb({r},{g},{b});'
        f'border-radius:2px;vertical-align:middle"></span>'
    )


class SliceControls(VBox):
    """Slice slider, previous/next slice, play/pause with frames per second, and the view switch.

    Attributes
    ----------
    slice_slider (1-based, as the caption), prev_slice_button, next_slice_button, play_button,
    fps_slider, view_toggle
    """

    def __init__(self, state: Any, guard: Any = None, **kwargs: Any) -> None:
        guard = guard or (lambda f: f)
        self.slice_slider = IntSlider(  # 1-based, as the caption under the images ("slice 3 / 12")
            value=1,
            min=1,
            max=1,
            description="Slice",
            continuous_update=True,
            style=_narrow("40px"),
            layout=Layout(width="300px"),
        )
        self.prev_slice_button = Button(icon="chevron-left", tooltip="Previous slice (←)", layout=_icon())
        self.next_slice_button = Button(icon="chevron-right", tooltip="Next slice (→)", layout=_icon())
        self.play_button = ToggleButton(
            value=False,
            description="Play",
            icon="play",
            tooltip="Play / pause (space)",
            layout=Layout(width="90px"),
        )
        self.fps_slider = IntSlider(
            value=5, min=1, max=20, description="FPS", style=_narrow("30px"), layout=Layout(width="240px")
        )
        self.view_toggle = ToggleButtons(
            options=[("SA", "sa"), ("HLA", "hla"), ("VLA", "vla")],
            tooltips=["Short axis", "Horizontal long axis", "Vertical long axis"],
            style={"button_width": "48px"},
        )
        dlink((state, "n_slices"), (self.slice_slider, "max"), lambda n: max(n, 1))
        dlink((state, "n_slices"), (self.slice_slider, "disabled"), lambda n: n <= 1)
        link((state, "slice"), (self.slice_slider, "value"), (lambda k: k + 1, lambda v: v - 1))
        link((state, "playing"), (self.play_button, "value"))
        link((state, "fps"), (self.fps_slider, "value"))
        link((state, "view"), (self.view_toggle, "value"))
        self.prev_slice_button.on_click(guard(lambda _: state.step_slice(-1)))
        self.next_slice_button.on_click(guard(lambda _: state.step_slice(+1)))
        self.play_button.observe(self._on_play, "value")
        super().__init__(
            [
                HBox([self.prev_slice_button, self.slice_slider, self.next_slice_button, self.view_toggle]),
                HBox([self.play_button, self.fps_slider]),
            ],
            **kwargs,
        )

    def _on_play(self, change: Any) -> None:
        self.play_button.icon = "pause" if change.new else "play"
        self.play_button.description = "Pause" if change.new else "Play"

    def sync_widgets(self) -> list[Any]:
        """Widgets a patient switch updates."""
        return [self.slice_slider, self.play_button]


class DisplayControls(VBox):
    """Overlay on/off, transparency, zoom (50-300 %), window/level and per-structure show/hide.

    Attributes
    ----------
    overlay_checkbox, contour_checkbox, mosaic_checkbox, three_views_checkbox, transparency_slider,
    zoom_slider, window_slider, reset_window_button, invert_checkbox, preset_dropdown,
    structure_checkboxes : dict[str, Checkbox]
    """

    def __init__(
        self, state: Any, reset_window: Any = None, guard: Any = None, presets: Any = None, **kwargs: Any
    ) -> None:
        guard = guard or (lambda f: f)
        self._state = state
        self.overlay_checkbox = Checkbox(value=True, description="Overlay", indent=False, layout=_auto())
        self.contour_checkbox = Checkbox(
            value=False, description="Outline (L)", indent=False, tooltip="Outlines", layout=_auto()
        )
        self.mosaic_checkbox = Checkbox(
            value=False, description="Mosaic (M)", indent=False, tooltip="ED and ES slices", layout=_auto()
        )
        self.three_views_checkbox = Checkbox(
            value=False,
            description="Three views (V)",
            indent=False,
            tooltip="Short axis and both long axes",
            layout=_auto(),
        )
        # Whole percent: a reviewer typing "30" in the readout means 30 %, not 30 x 100 %.
        self.transparency_slider = IntSlider(
            value=60,
            min=0,
            max=100,
            step=5,
            description="Transparency %",
            style={"description_width": "initial"},
            layout=Layout(width="270px"),
        )
        self.zoom_slider = IntSlider(
            value=100,
            min=50,
            max=300,
            step=10,
            description="Zoom %",
            style=_narrow("initial"),
            layout=Layout(width="250px"),
        )
        self.window_slider = FloatRangeSlider(
            value=(0.0, 255.0),
            min=0.0,
            max=255.0,
            step=1.0,
            description="Window",
            readout_format=".0f",
            style=_narrow("initial"),  # a fixed width cut the word to "Wind…"
            layout=Layout(width="320px"),
        )
        self.reset_window_button = Button(
            description="Auto",
            tooltip="Reset the window to this case's robust range",
            layout=Layout(width="60px"),
        )
        self.invert_checkbox = Checkbox(
            value=False, description="Invert (I)", indent=False, tooltip="Invert grey levels", layout=_auto()
        )
        names, apply_preset = presets if presets is not None else ([], None)
        self.preset_dropdown = Dropdown(
            options=[(name.capitalize(), name) for name in names],
            value=None,
            description="Preset",
            style=_narrow("initial"),
            layout=Layout(width="150px"),
        )
        if apply_preset is not None:
            self.preset_dropdown.observe(
                guard(lambda change: change.new is not None and apply_preset(change.new)), "value"
            )
        self.structure_checkboxes = {
            name: Checkbox(
                value=True, description=name, indent=False, tooltip=STRUCTURE_NAMES[name], layout=_auto()
            )
            for name in STRUCTURES
        }
        link((state, "overlay"), (self.overlay_checkbox, "value"))
        link((state, "contour"), (self.contour_checkbox, "value"))
        link((state, "invert"), (self.invert_checkbox, "value"))
        link((state, "mosaic"), (self.mosaic_checkbox, "value"))
        link((state, "three_views"), (self.three_views_checkbox, "value"))
        link(
            (state, "alpha"),
            (self.transparency_slider, "value"),
            (lambda a: round((1.0 - a) * 100), lambda t: 1.0 - t / 100),
        )
        link((state, "zoom"), (self.zoom_slider, "value"), (lambda z: round(z * 100), lambda p: p / 100))
        link((state, "window"), (self.window_slider, "value"), (tuple, list))
        dlink((state, "overlay"), (self.transparency_slider, "disabled"), lambda on: not on)
        if reset_window is not None:
            self.reset_window_button.on_click(guard(lambda _: reset_window()))
        for box in self.structure_checkboxes.values():
            box.observe(guard(self._on_structure), "value")
        state.observe(guard(self._on_visible), "visible")
        swatches = [HBox([HTML(_swatch(name)), box]) for name, box in self.structure_checkboxes.items()]
        super().__init__(
            [
                HBox([self.overlay_checkbox, self.contour_checkbox, self.transparency_slider]),
                HBox(
                    [
                        self.zoom_slider,
                        self.mosaic_checkbox,
                        self.three_views_checkbox,
                        self.invert_checkbox,
                        self.preset_dropdown,
                    ]
                ),
                HBox([self.window_slider, self.reset_window_button, *swatches]),
            ],
            **kwargs,
        )

    def _on_structure(self, change: Any) -> None:
        self._state.visible = [name for name, box in self.structure_checkboxes.items() if box.value]

    def _on_visible(self, change: Any) -> None:
        for name, box in self.structure_checkboxes.items():
            box.value = name in change.new

    def sync_widgets(self) -> list[Any]:
        """Widgets a patient switch updates (the window follows each case)."""
        return [self.window_slider]


def _icon() -> Layout:
    return Layout(width="36px")


def _narrow(width: str) -> dict[str, str]:
    return {"description_width": width}


def _auto() -> Layout:
    return Layout(width="auto")
