"""The 3D panel when the browser has no WebGL: it says so in one sentence and stays off."""

from __future__ import annotations

from cmrqc_widgets.widgets.volume3d import NO_WEBGL


def test_without_webgl_the_toggle_explains_and_stays_off(widget) -> None:
    """The browser reports no WebGL: toggle disabled, one sentence, no figure even if pressed."""
    view = widget.volume_view
    assert view.webgl_check.webgl is None and not view.toggle.disabled
    view.webgl_check.webgl = False  # what the probe in the page reports
    assert view.toggle.disabled
    assert NO_WEBGL in view.status.value and NO_WEBGL.count(".") == 1
    view.toggle.value = True  # a crafted client can still "press" a disabled button
    assert view.figure is None and not view.expanded
    widget.next_patient_button.click()
    assert NO_WEBGL in view.status.value and view.n_point_updates == 0
    widget.accept_button.click()  # 2D review goes on
    assert widget.state.decision == "accept"


def test_with_webgl_the_toggle_draws(widget) -> None:
    """The browser reports WebGL: pressing the toggle builds the figure and draws points."""
    view = widget.volume_view
    view.webgl_check.webgl = True
    view.toggle.value = True
    assert view.figure is not None and view.n_point_updates == 1 and not view.toggle.disabled
