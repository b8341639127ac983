"""Automatic QC on real expert segmentations (Sunnybrook): good labels pass, broken copies of them do not."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from realdata import sunnybrook_patients

from cmrqc_widgets.cases import load_case
from cmrqc_widgets.cases.contours import SUNNYBROOK_LAYOUT, sunnybrook_patient_to_nifti
from cmrqc_widgets.qc import case_metrics
from cmrqc_widgets.qc.faults import make_fault
from cmrqc_widgets.qc.score import is_flagged

COPIED_EPICARDIUM = "SCD0000501"  # its o-contour files are byte-identical to SCD0000101's


@dataclass(frozen=True)
class Phase:
    """What the checks read from a loaded case."""

    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    label_map: dict


@pytest.fixture(scope="module")
def patients(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Phase]]:
    """The Sunnybrook patients as ED/ES phases (ES checked as LV only: no epicardium is drawn at ES)."""
    out = tmp_path_factory.mktemp("sunnybrook_qc")
    cases = {}
    for folder in sunnybrook_patients():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's notes on the files' UIDs
            sunnybrook_patient_to_nifti(folder, out / folder.name)
        phases = {}
        for phase in ("ED", "ES"):
            c = load_case(out / folder.name, phase, SUNNYBROOK_LAYOUT)
            label_map = dict(c.label_map) if phase == "ED" else {"LV": c.label_map["LV"]}
            phases[phase] = Phase(c.image, np.asarray(c.labels), c.spacing, c.affine, label_map)
        cases[folder.name] = phases
    return cases


def _report(phases, phase=None, labels=None):
    if phase is not None:
        phases = {**phases, phase: replace(phases[phase], labels=labels)}
    return case_metrics(phases["ED"], phases["ES"], patient="p")


def _broken(phases, kind, phase, seed=0):
    p = phases[phase]
    labels = make_fault(kind, p.labels, p.label_map, p.spacing, np.random.default_rng(seed))
    return _report(phases, phase, labels)


def test_expert_segmentations_are_not_flagged(patients):
    """The experts' labels of every patient with its own epicardium pass: no failure, only 'extreme' notes."""
    for name, phases in patients.items():
        if name == COPIED_EPICARDIUM:
            continue
        report = _report(phases)
        assert not report.flagged, (name, report.failed_checks)


def test_copied_epicardium_in_the_shared_data_is_found(patients):
    """SCD0000501's myocardium is another patient's contour: the QC flags it as not surrounding its LV."""
    ed = Path(sunnybrook_patients()[0]).parent
    same = [
        (ed / COPIED_EPICARDIUM / "contours" / "o-contours" / f.name).read_bytes() == f.read_bytes()
        for f in (ed / "SCD0000101" / "contours" / "o-contours").iterdir()
    ]
    assert same and all(same)
    report = _report(patients[COPIED_EPICARDIUM])
    assert report.flagged
    assert any(c.rule == "myo_surround" for c in report.checks["ED"])


def test_shifted_labels_score_above_the_original(patients):
    """Labels moved 10 pixels off the heart are flagged as misplaced, on the slice shown, at both phases."""
    for name, phases in patients.items():
        original = _report(phases).suspicion
        for phase in ("ED", "ES"):
            report = _broken(phases, "shift", phase)
            assert report.suspicion > original, (name, phase)
            misplaced = [c for c in report.checks[phase] if c.rule == "misplaced"]
            assert misplaced and misplaced[0].slice is not None, (name, phase, report.failed_checks)


def test_mirrored_and_dilated_labels_score_above_the_original(patients):
    """A flipped label mask and an LV grown 4 pixels into the wall both score above the expert's labels."""
    for name, phases in patients.items():
        original = _report(phases).suspicion
        assert _broken(phases, "dilate", "ES").suspicion > original, name
        assert _broken(phases, "mirror", "ES").suspicion >= original, name
    flagged = sum(_broken(p, "dilate", "ES").flagged for p in patients.values())
    assert flagged >= 3


def test_real_myocardium_grown_outward_is_found_on_a_grown_slice(patients):
    """An expert ED myocardium grown 4 px into the surroundings on 2/3 of its slices fails 'epicardium'
    on one of those slices; the expert's own labels never fail it."""
    for name, phases in patients.items():
        if name == COPIED_EPICARDIUM:
            continue
        ed = phases["ED"]
        assert not any(c.rule == "epicardium" for c in _report(phases).checks["ED"]), name
        myo = np.flatnonzero((ed.labels == ed.label_map["MYO"]).any(axis=(1, 2)))
        grown_slices = myo[: 2 * len(myo) // 3]
        grown = make_fault("dilate", ed.labels, ed.label_map, ed.spacing, np.random.default_rng(0))
        on = np.isin(np.arange(ed.labels.shape[0]), grown_slices)[:, None, None]
        report = _report(phases, "ED", np.where(on, grown, ed.labels))
        (check,) = [c for c in report.checks["ED"] if c.rule == "epicardium"]
        assert is_flagged(check.weight) and report.flagged, (name, check)
        assert check.slice in grown_slices, (name, check.slice, grown_slices)
        assert f"slice {check.slice + 1} of {ed.labels.shape[0]}" in check.message


def test_real_low_ef_is_extreme_not_a_failure(patients):
    """These infarct patients' LV EF (about 20-35 %) is never an 'ef_range' failure."""
    for name, phases in patients.items():
        report = _report(phases)
        assert report.lv is not None and report.lv.ef < 40, name
        assert not any(c.rule == "ef_range" for c in report.pair_checks), name


def test_no_rv_is_not_segmented_never_missing(patients):
    """A layout without RV reports it as not segmented: no 'missing' check, no KeyError, empty CSV cells."""
    report = _report(next(iter(patients.values())))
    assert report.phases["ED"].not_segmented == ("RV",)
    assert not any("RV" in c.message for c in report.all_checks())
    rows = report.rows()
    assert rows[0]["rv_ml"] is None and rows[0]["rv_ef"] is None
    assert is_flagged(report.suspicion) is report.flagged
