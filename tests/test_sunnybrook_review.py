"""Real scans through the whole review: Sunnybrook cine DICOM + expert contours, as a reviewer meets them.

`cmrqc dataset create` is pointed at the shared Sunnybrook folder (our own conversion and
rasterisation), the review screen walks every patient, and the LV volumes and ejection fraction
it shows are checked against the expert contours' own figures (polygon areas x pixel size x slice
gap, read straight from the contour files and DICOM headers, not through our code).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from realdata import SUNNYBROOK, sunnybrook_patients
from synthetic import REVIEWER

from cmrqc_widgets.cases import load_case
from cmrqc_widgets.cases.contours import polygon_area, read_contour
from cmrqc_widgets.cli import main
from cmrqc_widgets.widgets import ReviewWidget

pytestmark = pytest.mark.slow


def contour_lv_ml(folder: Path) -> dict[str, float]:
    """LV blood volume of each phase from the expert's i-contours (ES: the earlier trigger time)."""
    headers = {
        int(p.stem): pydicom.dcmread(p, stop_before_pixels=True) for p in (folder / "dicom").glob("*.dcm")
    }
    first = next(iter(headers.values()))
    row, col = (
        np.array(first.ImageOrientationPatient[:3], float),
        np.array(first.ImageOrientationPatient[3:], float),
    )
    normal = np.cross(row, col)
    along = sorted({round(float(np.dot(h.ImagePositionPatient, normal)), 2) for h in headers.values()})
    gap = float(np.median(np.diff(along)))
    pixel = float(np.prod([float(v) for v in first.PixelSpacing]))

    def position(h) -> float:
        return round(float(np.dot(h.ImagePositionPatient, normal)), 2)

    # Two frames per slice position; the earlier one in trigger time is ES (the data's README).
    earliest = {}
    for h in headers.values():
        earliest[position(h)] = min(earliest.get(position(h), np.inf), float(h.TriggerTime))
    areas = {"ES": 0.0, "ED": 0.0}
    for path in (folder / "contours" / "i-contours").glob("*.txt"):
        header = headers[int(path.name.split("-")[2])]
        phase = "ES" if float(header.TriggerTime) == earliest[position(header)] else "ED"
        areas[phase] += polygon_area(read_contour(path))
    return {phase: area * pixel * gap / 1000 for phase, area in areas.items()}


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory):
    """The Sunnybrook patients made into a dataset by `cmrqc dataset create`, on a review screen."""
    patients = sunnybrook_patients()
    root = tmp_path_factory.mktemp("sunnybrook-root")
    assert (
        main(["dataset", "create", "sunnybrook", "--root", str(root), "--user", REVIEWER, str(SUNNYBROOK)])
        == 0
    )
    w = ReviewWidget(root=root, user=REVIEWER, dataset="sunnybrook.json")
    yield w, patients
    w.close()


def test_dataset_create_makes_a_case_per_patient(reviewed) -> None:
    """Every Sunnybrook patient folder became a case with both phases and its expert labels."""
    w, patients = reviewed
    names = [Path(p).name for p in w.state.patients]
    assert names == [p.name for p in patients]
    data = json.loads((Path(w.state.store.folder) / "sunnybrook.json").read_text())
    for key in data:
        for phase in ("ED", "ES"):
            case = load_case(key, phase)
            assert case.layout == "converted" and case.voxel_counts()["LV"] > 0


def test_walking_the_real_patients_shows_each_ones_own_images(reviewed) -> None:
    """Next through every patient: no error, the viewer's identity and shape are the state's, base first."""
    w, patients = reviewed
    st = w.state
    for _ in patients:
        assert st.error == "" and w.slice_view.shows_current and w.slice_view.case_id == st.case_id
        assert w.slice_view.shape == list(load_case(st.patient_dir(), st.phase).shape)
        lv = st.case.mask("LV").sum(axis=(1, 2))
        labelled = np.flatnonzero(lv)
        assert lv[labelled[0]] > lv[labelled[-1]]  # base (large LV) first, apex (small) last
        assert w.slice_view.orientation["sa"]["left"] and "Scanner" in w.case_info.html.value
        w.next_patient_button.click()


def test_lv_volumes_and_ef_shown_match_the_expert_contours(reviewed) -> None:
    """The metrics strip's LV EDV, ESV and EF agree with the contours' own figures (volumes within 3 %)."""
    w, patients = reviewed
    st = w.state
    for folder in patients:
        st.jump_to(folder.name)
        assert w.wait_idle(120)
        edv, esv, ef = st.triage.current.lv
        truth = contour_lv_ml(folder)
        assert edv == pytest.approx(truth["ED"], rel=0.03), folder.name
        assert esv == pytest.approx(truth["ES"], rel=0.03), folder.name
        assert ef == pytest.approx(100 * (1 - truth["ES"] / truth["ED"]), abs=2.0), folder.name
        assert f"EDV {edv:.0f} ml" in w.metrics_strip.html.value
