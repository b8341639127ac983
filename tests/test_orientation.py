"""Orientation the reviewer can trust: letters on the image edges, base-to-apex slices, 3D as in 2D."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import LABELS, phantom, write_case, write_nifti

from cmrqc_widgets.cases import load_case
from cmrqc_widgets.cases.reader import APEX_DIRECTION
from cmrqc_widgets.render.orientation import axis_labels, direction_letters, edge_letters
from cmrqc_widgets.widgets import SliceViewer
from cmrqc_widgets.widgets.volume3d import prepare_drawing

_t = np.deg2rad(25)
AFFINES = {
    "ras": np.diag([1.8, 1.8, 8.0, 1.0]),
    "lps": np.diag([-1.8, -1.8, 8.0, 1.0]),
    "swapped": np.array([[0, -1.8, 0, 0], [-1.8, 0, 0, 0], [0, 0, 8.0, 0], [0, 0, 0, 1.0]]),
    "oblique": np.array(
        [
            [1.8 * np.cos(_t), -1.8 * np.sin(_t), 0, 0],
            [1.8 * np.sin(_t), 1.8 * np.cos(_t), 0, 0],
            [0, 0, 8.0, 0],
            [0, 0, 0, 1],
        ]
    ),
}


def test_direction_letters() -> None:
    """RAS+ directions read as patient letters; an oblique one gets its second letter."""
    assert direction_letters([1, 0, 0]) == "R"
    assert direction_letters([-1, 0, 0]) == "L"
    assert direction_letters([0, 1, 0]) == "A"
    assert direction_letters([0, 0, -1]) == "I"
    assert direction_letters([-0.9, 0.5, 0.05]) == "LA"


def test_edge_letters_of_a_ras_case_in_every_view(case_dir: Path) -> None:
    """Radiological short axis: R on the left, L on the right, A on top; long axes: S on top."""
    case = load_case(case_dir, "ED")
    letters = edge_letters(case.affine)
    assert letters["sa"] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert letters["hla"]["top"] == "S" and letters["hla"]["bottom"] == "I"
    assert letters["vla"]["top"] == "S" and letters["vla"]["left"] == "A"


@pytest.mark.parametrize("name", list(AFFINES))
def test_viewer_receives_the_letters_of_the_case(tmp_path: Path, name: str) -> None:
    """The letters sent to the browser are those of the case's affine; a message clears them."""
    case = load_case(write_case(tmp_path / "p", affine=AFFINES[name]), "ED")
    viewer = SliceViewer()
    viewer.show_case(case)
    assert viewer.orientation == edge_letters(case.affine)
    assert viewer.orientation["sa"]["left"].startswith("R") and viewer.orientation["sa"]["right"].startswith(
        "L"
    )
    viewer.show_message("Could not show p ED: missing.")
    assert viewer.orientation == {}


def apex_shrinking_stack(shape=(40, 32, 6)) -> tuple[np.ndarray, np.ndarray]:
    """A stack whose LV shrinks slice after slice (file slice 0 = base)."""
    image = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.uint8)
    for k in range(shape[2]):
        im, lab = phantom((*shape[:2], 1), lv_radius=8.0 - k, seed=k)
        image[..., k], labels[..., k] = im[..., 0], lab[..., 0]
    return image, labels


@pytest.mark.parametrize("written", ["base first (UK Biobank)", "apex first (Sunnybrook)"])
def test_slice_zero_is_the_base_whatever_order_the_file_holds(tmp_path: Path, written: str) -> None:
    """Slices run base -> apex on screen: the largest LV first, whether the file starts at base or apex."""
    image, labels = apex_shrinking_stack()
    step = 8.0 * APEX_DIRECTION  # base -> apex in the scanner
    affine = np.eye(4)
    affine[:3, :3] = np.diag([-1.8, -1.8, 1.0])
    affine[:3, 2] = step
    if written.startswith("apex"):
        image, labels = image[..., ::-1].copy(), labels[..., ::-1].copy()
        affine[:3, 2] = -step
        affine[:3, 3] = 5 * step
    folder = tmp_path / "p"
    write_nifti(folder / "lvsa_SR_ED.nii.gz", image, affine=affine)
    write_nifti(folder / "seg_lvsa_SR_ED.nii.gz", labels, affine=affine)
    case = load_case(folder, "ED")
    lv = case.mask("LV").sum(axis=(1, 2))
    assert list(lv) == sorted(lv, reverse=True) and lv[0] > lv[-1]
    assert case.affine[:3, 0] @ APEX_DIRECTION > 0


@pytest.mark.parametrize("name", list(AFFINES))
def test_3d_shows_the_rv_on_the_same_side_as_2d(tmp_path: Path, name: str) -> None:
    """Where the RV sits from the LV on screen (across, up) is where it sits in 3D, for every orientation."""
    case = load_case(write_case(tmp_path / "p", affine=AFFINES[name]), "ED")

    def centre_2d(structure: str) -> np.ndarray:
        _, rows, cols = np.nonzero(case.mask(structure))
        return np.array([cols.mean(), -rows.mean()])  # across, up

    drawing = prepare_drawing(case, cap=10**6)
    seen_2d = centre_2d("RV") - centre_2d("LV")
    seen_3d = np.array([drawing.parts["RV"][k].mean() - drawing.parts["LV"][k].mean() for k in (0, 1)])
    clear = np.abs(seen_2d) > 1  # more than a voxel apart along that screen axis
    assert clear.any()
    assert (np.sign(seen_2d[clear]) == np.sign(seen_3d[clear])).all()
    if name == "ras":  # the phantom's RV is at larger x: the patient's right
        assert seen_2d[0] < 0  # radiological: the patient's right on the screen's left
    across, up, _ = (label.split(" → ") for label in drawing.axes)
    assert across[0][0] == "R" and across[1][0] == "L"  # as the 2D columns run
    assert up[0][0] == "P" and up[1][0] == "A"  # anterior at the top, as in 2D


def test_3d_axes_name_every_patient_direction(case_dir: Path) -> None:
    """The three 3D axes are labelled with L/R, A/P and S/I between them."""
    labels = " ".join(axis_labels(load_case(case_dir, "ED").affine))
    for pair in ("R", "L"), ("A", "P"), ("S", "I"):
        assert all(letter in labels for letter in pair), labels


def test_3d_size_of_an_acdc_style_case_uses_the_real_spacing(tmp_path: Path) -> None:
    """sform diag(-1,-1,1) with pixdim 1.5625 x 1.5625 x 10 mm: the 3D heart has its real depth."""
    import nibabel as nib

    image, labels = phantom((40, 32, 6), label_map=LABELS["acdc"])
    folder = tmp_path / "patient001"
    folder.mkdir()
    for data, suffix in ((image, ""), (labels, "_gt")):
        img = nib.Nifti1Image(data, None)
        img.set_sform(np.diag([-1.0, -1.0, 1.0, 1.0]), code=2)
        img.set_qform(None, code=0)
        img.header.set_zooms((1.5625, 1.5625, 10.0))
        for frame in (1, 12):
            img.to_filename(folder / f"patient001_frame{frame:02d}{suffix}.nii.gz")
    (folder / "Info.cfg").write_text("ED: 1\nES: 12\n")
    drawing = prepare_drawing(load_case(folder, "ED"), cap=10**6)
    depth = np.ptp(drawing.parts["LV"][2])
    assert depth == pytest.approx(5 * 10.0, abs=1e-3)  # six slices, 10 mm apart
    width = np.ptp(drawing.parts["LV"][0])
    assert width == pytest.approx((np.ptp(np.nonzero(labels == 3)[0])) * 1.5625, abs=1e-3)
