"""DICOM series to NIfTI: geometry, cine frames and clear errors (synthetic series written with pydicom)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from synthetic import dicom_slice

from cmrqc_widgets.cases.dicom import dicom_series_to_nifti
from cmrqc_widgets.cli import main
from cmrqc_widgets.errors import CaseError

pydicom = pytest.importorskip("pydicom")
from pydicom.uid import generate_uid  # noqa: E402

ROW_DIR = np.array([1.0, 0.0, 0.0])  # column index grows along +x (LPS)
COL_DIR = np.array([0.0, np.cos(0.3), -np.sin(0.3)])  # row index grows obliquely
PIXEL_SPACING = (1.5, 1.25)  # between rows, between columns (mm)
SLICE_GAP = 8.0


def write_series(
    folder: Path,
    n_slices: int = 4,
    frames: int = 1,
    *,
    series_uid: str | None = None,
    col_dir: np.ndarray = COL_DIR,
) -> np.ndarray:
    """Write an oblique stack (shuffled file order) and return its pixels as [slice, row, col]."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    normal = np.cross(ROW_DIR, col_dir)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 1000, size=(n_slices, 6, 5)).astype(np.int16)
    order = rng.permutation(n_slices * frames)
    for number, index in enumerate(order):
        k, frame = divmod(int(index), frames)
        ds = dicom_slice(
            pixels[k] + 1000 * frame, series_uid=series_uid, instance=number + 1, trigger_time=40.0 * frame,
            orientation=(ROW_DIR, col_dir), position=np.array([10.0, -20.0, 30.0]) + k * SLICE_GAP * normal,
            spacing=PIXEL_SPACING,
        )  # fmt: skip
        ds.RescaleSlope, ds.RescaleIntercept = 2, -5
        ds.save_as(folder / f"IM{number:04d}.dcm", enforce_file_format=True)
    return pixels


def test_stack_sorted_and_rescaled(tmp_path):
    """Slices are sorted along the plane normal whatever the file order, with slope and intercept applied."""
    pixels = write_series(tmp_path / "sa")
    image = dicom_series_to_nifti(tmp_path / "sa")
    data = np.asarray(image.dataobj)
    assert data.shape == (5, 6, 4)  # (columns, rows, slices)
    # This stack's normal points toward the base: slice 0 of the NIfTI is the written slice 3.
    np.testing.assert_allclose(data[:, :, 1].T, pixels[4 - 1 - 1] * 2 - 5)


def test_affine_maps_voxels_to_dicom_positions(tmp_path):
    """The RAS affine sends voxel (col, row, slice) to the DICOM patient position, signs flipped for RAS."""
    write_series(tmp_path / "sa")
    affine = dicom_series_to_nifti(tmp_path / "sa").affine
    normal = np.cross(ROW_DIR, COL_DIR)
    col, row, k = 3, 4, 2
    written = 4 - 1 - k  # base first: the stack is reversed (see test_slices_run_from_base_to_apex)
    lps = (
        np.array([10.0, -20.0, 30.0])
        + col * 1.25 * ROW_DIR
        + row * 1.5 * COL_DIR
        + written * SLICE_GAP * normal
    )
    np.testing.assert_allclose((affine @ [col, row, k, 1])[:3], lps * [-1, -1, 1], atol=1e-6)
    np.testing.assert_allclose(nib.affines.voxel_sizes(affine), [1.25, 1.5, SLICE_GAP], atol=1e-6)


@pytest.mark.parametrize("sign", [1, -1])
def test_slices_run_from_base_to_apex(tmp_path, sign):
    """Whichever way the scanner stepped, NIfTI slice 0 is the base and the last the apex."""
    from cmrqc_widgets.cases.reader import APEX_DIRECTION

    write_series(tmp_path / "sa", col_dir=sign * COL_DIR)  # flips the normal, so the written order
    affine = dicom_series_to_nifti(tmp_path / "sa").affine
    assert affine[:3, 2] @ APEX_DIRECTION > 0


def test_cine_needs_a_frame(tmp_path):
    """A cine series is refused without a frame, and the chosen frame is the one in trigger-time order."""
    pixels = write_series(tmp_path / "cine", frames=3)
    with pytest.raises(CaseError, match="cine series with 3 frames"):
        dicom_series_to_nifti(tmp_path / "cine")
    data = np.asarray(dicom_series_to_nifti(tmp_path / "cine", frame=1).dataobj)
    np.testing.assert_allclose(data[:, :, -1].T, (pixels[0] + 1000) * 2 - 5)
    with pytest.raises(CaseError, match="frame 7 does not exist"):
        dicom_series_to_nifti(tmp_path / "cine", frame=7)


def test_bad_folders_get_one_sentence(tmp_path):
    """Empty folders, non-DICOM files and mixed series are refused with the folder named."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(CaseError, match="holds no DICOM image"):
        dicom_series_to_nifti(tmp_path / "empty")
    write_series(tmp_path / "mixed", n_slices=2)
    write_series(tmp_path / "other", n_slices=2)
    for path in (tmp_path / "other").iterdir():
        path.rename(tmp_path / "mixed" / f"b{path.name}")
    with pytest.raises(CaseError, match="mixes 2 DICOM series"):
        dicom_series_to_nifti(tmp_path / "mixed")


def test_converted_series_loads_as_a_case(tmp_path):
    """`cmrqc convert-dicom` writes a NIfTI that load_case reads with matching labels."""
    from cmrqc_widgets.cases import load_case

    write_series(tmp_path / "dicom")
    patient = tmp_path / "patient001"
    patient.mkdir()
    assert main(["convert-dicom", str(tmp_path / "dicom"), str(patient / "sa_ED.nii.gz")]) == 0
    image = nib.load(patient / "sa_ED.nii.gz")
    labels = np.zeros(image.shape, np.uint8)
    labels[1:3, 2:4, 1:3] = 1
    nib.Nifti1Image(labels, image.affine).to_filename(patient / "seg_sa_ED.nii.gz")
    case = load_case(patient, "ED", "ukbb")
    assert case.shape == (4, 6, 5)  # slices, rows, columns: the left-right axis runs across
    assert case.voxel_counts()["LV"] == 8
