"""The 3D panel: without WebGL it says so in one sentence and stays off; with it, the current 2D
slice is drawn as a plane that follows the slice."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import REVIEWER, write_case, write_dataset

from cmrqc_widgets.render.orientation import screen_frame
from cmrqc_widgets.render.points import label_points, scaled_affine
from cmrqc_widgets.widgets import ReviewWidget
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
    first = view.figure
    view.toggle.value = False
    view.toggle.value = True  # shown again: a new figure (ipyvolume paints garbage in a re-shown one)
    assert view.figure is not first and view._body.children == (view.figure,)
    assert view.n_point_updates == 2 and len(view.figure.scatters) >= 1 and view.figure.meshes


@pytest.fixture
def oblique(tmp_path):
    """A review screen on two patients of an oblique, anisotropic orientation, 3D open."""
    theta = np.deg2rad(30)
    affine = np.array(
        [
            [1.8 * np.cos(theta), -1.8 * np.sin(theta), 0, 0],
            [1.8 * np.sin(theta), 1.8 * np.cos(theta), 0, 0],
            [0, 0, 8.0, 0],
            [0, 0, 0, 1.0],
        ]
    )
    folders = [write_case(tmp_path / "data" / f"p{i}", affine=affine, shape=(40, 32, 7)) for i in (1, 2)]
    write_dataset(tmp_path, folders)
    w = ReviewWidget(root=tmp_path, user=REVIEWER, dataset="cohort.json", show_3d=True)
    yield w
    w.close()


def off_plane_mm(w: ReviewWidget, axis: int, k: int) -> float:
    """Largest distance (mm) from the plane drawn to the labelled voxels of slice ``k`` along ``axis``."""
    plane = w.volume_view.plane
    shift = np.array([plane.x_offset, plane.y_offset, plane.z_offset])
    corners = np.stack([plane.x, plane.y, plane.z], axis=1).astype(np.float64) + shift
    normal = np.cross(corners[1] - corners[0], corners[3] - corners[0])
    normal /= np.linalg.norm(normal)
    case = w.state.case
    only = np.zeros_like(case.labels)
    where = [slice(None)] * 3
    where[axis] = k
    only[tuple(where)] = case.labels[tuple(where)]
    points = label_points(only, scaled_affine(case.affine, case.spacing), case.label_map, cap=10**6)
    assert len(points), "the slice has labelled voxels"
    xyz = points.xyz.astype(np.float64) @ screen_frame(case.affine).T  # as the 3D panel draws them
    return float(np.abs((xyz - corners[0]) @ normal).max())


def test_the_slice_plane_follows_the_slice(oblique) -> None:
    """The plane passes through the voxels of the slice shown in 2D, whichever slice, view and patient."""
    w = oblique
    w.volume_view.webgl_check.webgl = True
    points_drawn = w.volume_view.n_point_updates
    for k in (1, 3, 5):
        w.state.slice = k
        assert off_plane_mm(w, 0, k) < 0.01
        assert off_plane_mm(w, 0, k + 1) > 7.0  # the next slice is a slice spacing away
    assert w.volume_view.n_point_updates == points_drawn  # slice moves send no points
    w.state.view = "hla"
    w.state.slice = 14
    assert off_plane_mm(w, 1, 14) < 0.01 and off_plane_mm(w, 1, 16) > 3.0
    w.state.view = "sa"
    w.next_patient_button.click()
    w.state.slice = 2
    assert off_plane_mm(w, 0, 2) < 0.01
