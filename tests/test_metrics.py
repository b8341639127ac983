"""Per-case metrics: volumes, EF, sanity rules and the suspicion score."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import LABELS, phantom, write_case

from cmrqc_widgets.qc.metrics import (
    DEFAULT_WEIGHTS,
    MYOCARDIAL_DENSITY,
    Thresholds,
    case_metrics,
    metrics_for_patient,
    phase_metrics,
)

MAP = LABELS["4dsegment"]  # LV 1, RV 2, MYO 3
SPACING = (8.0, 1.8, 1.8)  # mm along (slice, row, col)


def heart(lv_radius: float = 6.0, shape=(40, 32, 6), rv_radius: float | None = None) -> np.ndarray:
    """The conftest phantom as a [slice, row, col] label array (6 slices)."""
    _, labels = phantom(shape, label_map=MAP, lv_radius=lv_radius, rv_radius=rv_radius)
    return np.ascontiguousarray(labels.transpose(2, 1, 0))


def rules(pm) -> set[str]:
    return {c.rule for c in pm.checks}


def test_volumes_of_a_box_in_ml():
    """A box of known voxel count gives voxels x voxel volume in ml, and mass at 1.05 g/ml."""
    labels = np.zeros((6, 20, 20), np.uint8)
    labels[1:4, 2:6, 2:7] = MAP["LV"]  # 3*4*5 = 60 voxels
    labels[1:3, 10:12, 10:12] = MAP["MYO"]  # 8 voxels
    pm = phase_metrics(labels, (10.0, 2.0, 1.5), MAP, Thresholds(min_voxels=1))
    assert pm.voxel_counts == {"LV": 60, "RV": 0, "MYO": 8}
    assert pm.volumes_ml["LV"] == pytest.approx(60 * 30.0 / 1000)
    assert pm.volumes_ml["MYO"] == pytest.approx(0.24)
    assert pm.myo_mass_g == pytest.approx(0.24 * MYOCARDIAL_DENSITY)
    assert pm.slice_counts == {"LV": 3, "RV": 0, "MYO": 2}


def test_ejection_fraction_and_stroke_volume():
    """EF = (EDV - ESV) / EDV in percent, SV = EDV - ESV, for LV and RV from the two phases."""
    ed, es = heart(6.0), heart(4.0, rv_radius=7.0)  # both ventricles eject about the same volume

    class FakeCase:
        def __init__(self, labels):
            self.labels, self.spacing, self.label_map, self.patient_dir = labels, SPACING, MAP, "p1"

    report = case_metrics(FakeCase(ed), FakeCase(es))
    edv = (ed == MAP["LV"]).sum() * 8 * 1.8 * 1.8 / 1000
    esv = (es == MAP["LV"]).sum() * 8 * 1.8 * 1.8 / 1000
    assert report.lv.edv_ml == pytest.approx(edv)
    assert report.lv.sv_ml == pytest.approx(edv - esv)
    assert report.lv.ef == pytest.approx(100 * (edv - esv) / edv)
    assert 10 < report.rv.ef < 90
    assert report.patient == "p1"
    assert report.suspicion == 0
    rows = report.rows()
    assert [r["phase"] for r in rows] == ["ED", "ES"]
    assert rows[0]["lv_ef"] == pytest.approx(report.lv.ef, abs=0.05)
    assert rows[0]["failed_checks"] == ""


def test_phantom_passes_every_rule():
    """The phantom heart (ED and ES) fails no rule and scores 0."""
    for radius in (6.0, 4.0):
        pm = phase_metrics(heart(radius), SPACING, MAP)
        assert pm.checks == ()
        assert pm.suspicion == 0
        assert pm.lv_surround == pytest.approx(1.0)
        assert pm.rv_surround < 0.75


def test_empty_phase():
    """A phase with no labels fails one 'empty' rule and skips the others."""
    pm = phase_metrics(np.zeros((6, 10, 10), np.uint8), SPACING, MAP)
    assert rules(pm) == {"empty"}
    assert "no LV, RV or myocardium" in pm.checks[0].message


def test_missing_structure():
    """A structure below the minimum voxel count is reported missing, by name."""
    labels = heart()
    labels[labels == MAP["RV"]] = 0
    pm = phase_metrics(labels, SPACING, MAP)
    assert "missing" in rules(pm)
    assert any(c.message.startswith("RV missing") for c in pm.checks)


def test_too_few_slices():
    """LV and myocardium on fewer slices than the minimum fail 'few_slices'."""
    labels = heart()
    labels[2:] = 0
    pm = phase_metrics(labels, SPACING, MAP, Thresholds(min_voxels=10))
    assert "few_slices" in rules(pm)
    assert any("LV on only 2 slices" in c.message for c in pm.checks)


def test_gap_between_labelled_slices():
    """An unlabelled slice between labelled ones is a gap, named with 1-based slice numbers."""
    labels = heart()
    labels[2] = 0
    pm = phase_metrics(labels, SPACING, MAP)
    assert "gap" in rules(pm)
    assert any("no labels on slice 3 of 6" in c.message for c in pm.checks)
    assert "islands" not in rules(pm)  # the gap explains the split pieces


def test_gap_of_one_structure():
    """LV absent on a slice inside its range (other labels present) is a gap of the LV."""
    labels = heart()
    labels[3][labels[3] == MAP["LV"]] = MAP["MYO"]
    pm = phase_metrics(labels, SPACING, MAP)
    assert any("LV missing on slice 4 of 6 inside its range" in c.message for c in pm.checks)


def test_rv_absent_on_mid_slice():
    """RV missing on the mid-ventricular slice fails 'mid_slice'."""
    labels = heart()
    labels[2][labels[2] == MAP["RV"]] = 0
    pm = phase_metrics(labels, SPACING, MAP)
    assert rules(pm) == {"mid_slice", "islands"}  # the RV is also cut in two
    assert "RV absent on the mid-ventricular slice 3 of 6" in pm.checks[0].message


def test_islands():
    """A detached blob of LV label counts as an extra piece; tiny specks are ignored."""
    labels = heart()
    labels[1:3, 0:3, 28:31] = MAP["LV"]  # 18 voxels, 0.47 ml: an island
    pm = phase_metrics(labels, SPACING, MAP)
    assert rules(pm) == {"islands"}
    assert "LV is in 2 separate pieces" in pm.checks[0].message
    speck = heart()
    speck[1, 0, 31] = MAP["LV"]  # one voxel, 0.026 ml: below min_island_ml
    assert phase_metrics(speck, SPACING, MAP).checks == ()
    assert rules(phase_metrics(speck, SPACING, MAP, Thresholds(min_island_ml=0.01))) == {"islands"}


def test_leak_through_the_myocardium():
    """LV label spilling through the wall on a mid slice: myocardium no longer surrounds it."""
    labels = heart()
    rows, cols = np.mgrid[0:32, 0:40]
    leak = (np.abs(rows - 16) < 4) & (cols < 16)  # out through the wall, away from the RV
    for k in (2, 3):
        labels[k][leak & (labels[k] != MAP["RV"])] = MAP["LV"]
    pm = phase_metrics(labels, SPACING, MAP)
    assert "myo_surround" in rules(pm)
    assert pm.lv_surround < 0.75
    assert any("a leak?" in c.message for c in pm.checks)


def test_lv_without_myocardium():
    """A mid slice with LV blood pool and no myocardium at all is reported; the basal outflow tract is not."""
    labels = heart()
    labels[3][labels[3] == MAP["MYO"]] = 0
    pm = phase_metrics(labels, SPACING, MAP)
    assert "lv_without_myo" in rules(pm)
    assert any("without any myocardium on slice 4 of 6" in c.message for c in pm.checks)
    outflow = np.concatenate([np.zeros((1, 32, 40), np.uint8), heart()])
    outflow[0, 14:18, 14:18] = MAP["LV"]
    assert "lv_without_myo" not in rules(phase_metrics(outflow, SPACING, MAP))


def test_swapped_labels():
    """LV and RV label numbers exchanged: reported as swapped, not as a plain leak."""
    labels = heart()
    swapped = labels.copy()
    swapped[labels == MAP["LV"]] = MAP["RV"]
    swapped[labels == MAP["RV"]] = MAP["LV"]
    pm = phase_metrics(swapped, SPACING, MAP)
    assert "swapped" in rules(pm)
    assert "myo_surround" not in rules(pm)
    assert pm.rv_surround == pytest.approx(1.0)


def test_unknown_label_values():
    """Label values the layout does not define are reported."""
    labels = heart()
    labels[0, 0, 0] = 7
    pm = phase_metrics(labels, SPACING, MAP)
    assert [c.message for c in pm.checks] == ["unknown label values 7"]


def test_es_larger_than_ed_and_ef_range():
    """ES larger than ED fails 'es_gt_ed'; equal volumes give EF 0 outside the plausible range."""

    class FakeCase:
        def __init__(self, labels):
            self.labels, self.spacing, self.label_map, self.patient_dir = labels, SPACING, MAP, "p"

    swapped_phases = case_metrics(FakeCase(heart(4.0)), FakeCase(heart(6.0)))
    assert {c.rule for c in swapped_phases.pair_checks} == {"es_gt_ed"}
    assert swapped_phases.lv.ef < 0
    same = case_metrics(FakeCase(heart()), FakeCase(heart()))
    assert {c.rule for c in same.pair_checks} == {"ef_range", "es_equals_ed"}
    assert "LV ejection fraction 0% outside the plausible range 3-90%" in same.failed_checks
    # The pair checks count in both phase rows, once in the case score.
    w = 2 * DEFAULT_WEIGHTS["ef_range"] + DEFAULT_WEIGHTS["es_equals_ed"]
    assert same.phase_suspicion("ED") == same.phase_suspicion("ES") == w
    assert same.suspicion == w


def test_end_diastolic_volume_range_is_configurable():
    """An ED volume outside the configured plausible range fails 'volume_range' on the ED row."""

    class FakeCase:
        def __init__(self, labels):
            self.labels, self.spacing, self.label_map, self.patient_dir = labels, SPACING, MAP, "p"

    t = Thresholds(edv_range_ml=(50.0, 300.0))
    report = case_metrics(FakeCase(heart(6.0)), FakeCase(heart(4.0)), t)
    assert {c.rule for c in report.checks["ED"]} == {"volume_range"}
    assert report.checks["ES"] == ()
    assert "LV end-diastolic volume 17 ml outside the plausible range 50-300 ml" in report.failed_checks


def test_weights_configurable_and_checked():
    """Weights can be overridden per rule; an unknown rule name is refused."""
    labels = heart()
    labels[2] = 0
    pm = phase_metrics(labels, SPACING, MAP, Thresholds(min_slices=3, weights={"gap": 7.5}))
    assert pm.suspicion == 7.5 + DEFAULT_WEIGHTS["mid_slice"]
    with pytest.raises(ValueError, match="Unknown rule names in weights: gapp"):
        Thresholds(weights={"gapp": 1.0})


def test_bad_cases_more_suspicious_than_good():
    """Every crafted fault scores higher than the phantom."""
    good = phase_metrics(heart(), SPACING, MAP).suspicion
    bad = heart()
    bad[2] = 0
    assert phase_metrics(bad, SPACING, MAP).suspicion > good == 0


def test_messages_never_contain_semicolons():
    """Messages are joined with ';' in CSV, so they never contain one."""
    labels = heart()
    labels[1:3, 0:3, 28:31] = MAP["LV"]
    pm = phase_metrics(labels, SPACING, MAP)
    assert pm.checks and all(";" not in c.message for c in pm.checks)


def test_labels_must_be_3d():
    """A 2D array is refused with a clear message."""
    with pytest.raises(ValueError, match="labels must be 3D"):
        phase_metrics(np.zeros((4, 4)), SPACING, MAP)


def test_metrics_for_patient_reads_both_phases(tmp_path):
    """A phantom patient on disk loads, measures and passes, in any preset layout."""
    for layout in ("4dsegment", "ukbb", "acdc"):
        folder = write_case(tmp_path / layout / "patient001", layout)
        report = metrics_for_patient(folder)
        assert report.failed_checks == [], layout
        assert set(report.phases) == {"ED", "ES"}
        assert report.lv.ef == pytest.approx(58.7, abs=1.0)
        assert report.patient == str(folder)


def test_metrics_for_patient_never_raises_for_a_bad_case(tmp_path):
    """A truncated ES file becomes 'cannot read ES: ...' with high suspicion; ED is still measured."""
    folder = write_case(tmp_path / "p1")
    es = folder / "seg_lvsa_SR_ES.nii.gz"
    es.write_bytes(es.read_bytes()[:60])
    report = metrics_for_patient(folder, patient="p1")
    assert report.patient == "p1"
    assert set(report.phases) == {"ED"}
    assert report.lv is None
    (check,) = report.checks["ES"]
    assert check.rule == "unreadable"
    assert check.message.startswith("cannot read ES: ")
    assert "seg_lvsa_SR_ES.nii.gz" in check.message
    assert report.suspicion == DEFAULT_WEIGHTS["unreadable"]
    missing = metrics_for_patient(tmp_path / "nobody")
    assert [c.rule for c in missing.all_checks()] == ["unreadable", "unreadable"]
