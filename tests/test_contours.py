"""Expert contours as labels: rasterising polygons, and real Sunnybrook patients converted to NIfTI cases."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from realdata import SUNNYBROOK_ED_FRAME, SUNNYBROOK_SLICES, sunnybrook_patients

from cmrqc_widgets.cases import load_case
from cmrqc_widgets.cases.contours import (
    SUNNYBROOK_LABELS,
    SUNNYBROOK_LAYOUT,
    polygon_area,
    rasterise,
    read_contour,
    sunnybrook_patient_to_nifti,
)
from cmrqc_widgets.errors import CaseError

LV, MYO = SUNNYBROOK_LABELS["LV"], SUNNYBROOK_LABELS["MYO"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """Every shared Sunnybrook patient converted once: name -> (patient folder, written paths)."""
    out = tmp_path_factory.mktemp("sunnybrook")
    return {p.name: (p, sunnybrook_patient_to_nifti(p, out / p.name)) for p in sunnybrook_patients()}


def _arrays(paths: tuple[Path, Path]) -> tuple[nib.Nifti1Image, np.ndarray, np.ndarray]:
    image = nib.load(paths[0])
    return image, np.asarray(image.dataobj), np.asarray(nib.load(paths[1]).dataobj)


def test_square_rasterises_to_the_pixels_whose_centre_is_inside():
    """A square from (1.5, 2.5) to (5.5, 4.5) covers columns 2-5 of rows 3-4, nothing else."""
    mask = rasterise(np.array([[1.5, 2.5], [5.5, 2.5], [5.5, 4.5], [1.5, 4.5]]), (8, 9))
    expected = np.zeros((8, 9), dtype=bool)
    expected[3:5, 2:6] = True
    np.testing.assert_array_equal(mask, expected)


def test_x_is_the_column_and_y_the_row():
    """A tall thin polygon (x narrow, y long) fills a column strip, not a row strip."""
    mask = rasterise(np.array([[3.5, 0.5], [4.5, 0.5], [4.5, 6.5], [3.5, 6.5]]), (8, 8))
    assert mask[:, 4].sum() == 6
    assert mask.sum() == 6


def test_rasterised_disc_area_matches_polygon_area():
    """A 40-pixel-radius circle rasterises to its shoelace area within 1 %."""
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    points = np.c_[60 + 40 * np.cos(angles), 55 + 40 * np.sin(angles)]
    assert rasterise(points, (128, 128)).sum() == pytest.approx(polygon_area(points), rel=0.01)


def test_polygon_clipped_at_the_image_border():
    """A contour running off the image fills only the pixels on the image."""
    mask = rasterise(np.array([[-5.0, -5.0], [3.5, -5.0], [3.5, 3.5], [-5.0, 3.5]]), (6, 6))
    assert mask.sum() == 16


def test_malformed_contour_line_names_file_and_line(tmp_path: Path):
    """A line that is not two numbers is reported with the file and line number."""
    path = tmp_path / "IM-0001-0048-icontour-manual.txt"
    path.write_text("1.0 2.0\n3.0 oops\n4 5\n")
    with pytest.raises(CaseError, match=r"line 2 is not an 'x y' point"):
        read_contour(path)


def test_contour_with_too_few_points(tmp_path: Path):
    """Two points are no closed contour."""
    path = tmp_path / "c.txt"
    path.write_text("1 2\n3 4\n")
    with pytest.raises(CaseError, match="at least 3"):
        read_contour(path)


def test_folder_without_dicom_is_refused(tmp_path: Path):
    """A folder that is not a Sunnybrook patient gets one sentence."""
    with pytest.raises(CaseError, match="no dicom/ folder"):
        sunnybrook_patient_to_nifti(tmp_path, tmp_path / "out")


def test_lv_volume_equals_contour_area_times_slice_spacing(converted):
    """Per patient and phase, the labelled LV volume matches the polygons' area x spacing within 3 %."""
    for name, (folder, written) in converted.items():
        for phase in ("ED", "ES"):
            image, _, labels = _arrays(written[phase])
            dx, dy, dz = image.header.get_zooms()[:3]
            ed_instance = SUNNYBROOK_ED_FRAME[name] + 1  # InstanceNumber = 20 * position + frame + 1
            areas = [
                polygon_area(read_contour(path))
                for path in (folder / "contours" / "i-contours").glob("*.txt")
                if ((int(path.name.split("-")[2]) - ed_instance) % 20 == 0) == (phase == "ED")
            ]
            assert areas, f"{name} {phase} has no contours"
            contour_ml = sum(areas) * dx * dy * dz / 1000
            label_ml = (labels == LV).sum() * dx * dy * dz / 1000
            assert label_ml == pytest.approx(contour_ml, rel=0.03), (name, phase)


def test_myocardium_only_at_ed_and_surrounds_the_blood_pool(converted):
    """ED has a myocardial ring (o-contours), ES has none (no o-contours were drawn)."""
    for _, written in converted.values():
        _, _, ed = _arrays(written["ED"])
        _, _, es = _arrays(written["ES"])
        assert (ed == MYO).sum() > 0.3 * (ed == LV).sum()
        assert not (es == MYO).any()


def test_labels_sit_on_the_anatomy(converted):
    """On SSFP the labelled blood pool is bright and the labelled myocardium dark: labels are on the heart."""
    for name, (_, written) in converted.items():
        _, image, labels = _arrays(written["ED"])
        assert np.median(image[labels == LV]) > 1.8 * np.median(image[labels == MYO]), name
        assert np.median(image[labels == LV]) > 3 * np.median(image), name


def test_geometry_and_phases_match_the_data(converted):
    """Slice count as documented, labels on the image grid, ED (the later frame) has the larger LV."""
    for name, (_, written) in converted.items():
        image_ed, _, ed = _arrays(written["ED"])
        image_es, _, es = _arrays(written["ES"])
        assert image_ed.shape[2] == SUNNYBROOK_SLICES[name]
        np.testing.assert_allclose(nib.load(written["ED"][1]).affine, image_ed.affine)
        np.testing.assert_allclose(image_es.affine, image_ed.affine)
        ejection_fraction = 1 - (es == LV).sum() / (ed == LV).sum()
        assert 0.15 < ejection_fraction < 0.40, name  # heart failure with infarct (README: about 20-35 %)


def test_converted_patient_loads_as_a_case(converted):
    """The written folder reads back through load_case with the Sunnybrook layout, no RV in its label map."""
    _, written = next(iter(converted.values()))
    case = load_case(written["ED"][0].parent, "ED", layout=SUNNYBROOK_LAYOUT)
    assert set(case.label_map) == {"LV", "MYO"}
    assert (case.labels == LV).sum() == (_arrays(written["ED"])[2] == LV).sum()
