"""The rules behind the suspicion score: image agreement, geometry, physiology, severity, flag threshold."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import LABELS, phantom

from cmrqc_widgets.qc.faults import FAULTS, make_fault
from cmrqc_widgets.qc.metrics import Thresholds, case_metrics, phase_metrics
from cmrqc_widgets.qc.score import FLAG_SCORE, beyond, is_flagged

MAP = LABELS["4dsegment"]  # LV 1, RV 2, MYO 3
SPACING = (8.0, 1.8, 1.8)


def display_affine() -> np.ndarray:
    """(slice, row, col) -> RAS for the phantom: columns run toward +x (the patient's right)."""
    affine = np.zeros((4, 4))
    affine[0, 2] = SPACING[2]  # col -> x
    affine[1, 1] = -SPACING[1]  # row -> -y (rows run down from anterior)
    affine[2, 0] = -SPACING[0]  # slice -> -z
    affine[3, 3] = 1.0
    return affine


def case(lv_radius=6.0, rv_radius=None, shape=(48, 40, 8)):
    """Phantom image and labels as [slice, row, col], with SSFP contrast."""
    image, labels = phantom(shape, label_map=MAP, lv_radius=lv_radius, rv_radius=rv_radius)
    return np.ascontiguousarray(image.transpose(2, 1, 0)), np.ascontiguousarray(labels.transpose(2, 1, 0))


class Phase:
    def __init__(self, image, labels, label_map=MAP, affine=None):
        self.image, self.labels, self.label_map = image, labels, dict(label_map)
        self.spacing, self.affine, self.patient_dir = SPACING, affine, "p"


def rules(pm) -> set[str]:
    return {c.rule for c in pm.checks}


def test_severity_is_zero_inside_and_grows_outside_the_range():
    """beyond() is 0 in range and counts tolerances outside it; the flag threshold is FLAG_SCORE."""
    assert beyond(1.0, 0.5, 2.0, 0.25) == 0
    assert beyond(0.25, 0.5, None, 0.25) == pytest.approx(1.0)
    assert beyond(3.0, None, 2.0, 0.5) == pytest.approx(2.0)
    assert is_flagged(FLAG_SCORE) and not is_flagged(FLAG_SCORE - 0.01) and not is_flagged(None)


def test_labels_on_the_anatomy_pass_the_image_checks():
    """The phantom's labels on its own image fail no image check."""
    image, labels = case()
    pm = phase_metrics(labels, SPACING, MAP, image=image, affine=display_affine())
    assert pm.checks == ()
    assert pm.agreement.contrast > 2 and pm.agreement.fit_gain < 1.05


def test_labels_shifted_off_the_heart_are_misplaced():
    """Labels moved 10 pixels fit the image better moved back: 'misplaced', with the move in mm."""
    image, labels = case()
    moved = make_fault("shift", labels, MAP, SPACING, np.random.default_rng(1))
    pm = phase_metrics(moved, SPACING, MAP, image=image)
    (check,) = [c for c in pm.checks if c.rule == "misplaced"]
    assert is_flagged(check.weight)
    assert "labels off the heart?" in check.message
    dr, dc = pm.agreement.fit_offset_mm
    assert 12 <= np.hypot(dr, dc) <= 24  # 10 px of 1.8 mm, found on a 3.6 mm grid


def test_swapped_lv_and_myocardium_fail_the_contrast_check():
    """An LV label on dark muscle: the blood-to-muscle ratio falls below 1 and is reported."""
    image, labels = case()
    swapped = labels.copy()
    swapped[labels == MAP["LV"]], swapped[labels == MAP["MYO"]] = MAP["MYO"], MAP["LV"]
    pm = phase_metrics(swapped, SPACING, MAP, image=image)
    assert pm.agreement.contrast < 1
    assert "contrast" in rules(pm)


def test_myocardium_grown_outward_fails_the_epicardium_check_on_its_worst_slice():
    """Heart grown 2 px over dark surroundings (4 px on slice 6): 'epicardium' fails on slice 6.

    In place, or grown by 1 px (two experts' disagreement), it passes.
    """
    image, labels = case()
    image[labels == 0] = 30.0  # lung-dark surroundings (the phantom's 100 looks like its muscle, 150)
    rng = np.random.default_rng(0)
    in_place = phase_metrics(labels, SPACING, MAP, image=image)
    one_pixel_labels = FAULTS["dilate"](labels, MAP, SPACING, rng, pixels=1)
    one_pixel = phase_metrics(one_pixel_labels, SPACING, MAP, image=image)
    assert "epicardium" not in rules(in_place) | rules(one_pixel)  # an expert's disagreement is no failure
    on_slice_6 = (np.arange(labels.shape[0]) == 5)[:, None, None]
    grown = np.where(
        on_slice_6,
        FAULTS["dilate"](labels, MAP, SPACING, rng, pixels=4),
        FAULTS["dilate"](labels, MAP, SPACING, rng, pixels=2),
    )
    pm = phase_metrics(grown, SPACING, MAP, image=image)
    (check,) = [c for c in pm.checks if c.rule == "epicardium"]
    assert check.slice == 5 and "slice 6 of 8" in check.message
    assert is_flagged(check.weight)
    assert pm.agreement.rim_likeness < one_pixel.agreement.rim_likeness < in_place.agreement.rim_likeness


def test_surroundings_as_bright_as_the_wall_leave_the_rim_unjudged():
    """Where the tissue around the heart has the wall's intensity, the rim is not judged (no false alarm)."""
    image, labels = case()
    image[labels == 0] = 150.0  # surroundings exactly like the myocardium
    grown = make_fault("dilate", labels, MAP, SPACING, np.random.default_rng(0))
    pm = phase_metrics(grown, SPACING, MAP, image=image)
    assert pm.agreement.rim_likeness is None
    assert "epicardium" not in rules(pm)


def test_rv_on_the_wrong_side_for_the_affine():
    """The RV must lie to the patient's right/anterior of the LV; a mirrored header puts it left."""
    _image, labels = case()
    good = phase_metrics(labels, SPACING, MAP, affine=display_affine())
    assert "rv_position" not in rules(good)
    mirrored = display_affine()
    mirrored[0, 2] *= -1
    assert "rv_position" in rules(phase_metrics(labels, SPACING, MAP, affine=mirrored))


def test_lv_touching_rv_without_septum():
    """LV blood pool grown into the RV with no myocardium between them fails 'septum'."""
    _, labels = case()
    touching = labels.copy()
    touching[(labels == MAP["MYO"]) & (np.roll(labels, -3, axis=2) == MAP["RV"])] = MAP["LV"]
    pm = phase_metrics(touching, SPACING, MAP)
    assert "septum" in rules(pm)


def test_one_slice_jumping_sideways_is_misaligned():
    """A slice whose labels sit 14 mm off the others: 'misaligned' on that slice (Tarroni 2020)."""
    _, labels = case()
    labels[4] = np.roll(labels[4], 8, axis=1)
    pm = phase_metrics(labels, SPACING, MAP)
    (check,) = [c for c in pm.checks if c.rule == "misaligned"]
    assert check.slice in (4, 5)


def test_small_island_is_a_note_a_large_far_one_a_failure():
    """A 0.3 ml speck beside the heart is listed but does not flag; a 3 ml blob far away flags."""
    _, labels = case()
    speck = labels.copy()
    speck[3, 2:5, 2:6] = MAP["LV"]  # 12 voxels of 0.026 ml: 0.31 ml
    small = phase_metrics(speck, SPACING, MAP)
    (note,) = [c for c in small.checks if c.rule == "islands"]
    assert not is_flagged(note.weight)
    blob = labels.copy()
    blob[2:4, 0:9, 0:9] = MAP["LV"]  # 162 voxels, 4.2 ml
    big = phase_metrics(blob, SPACING, MAP)
    (failure,) = [c for c in big.checks if c.rule == "islands"]
    assert is_flagged(failure.weight)


def test_severe_but_consistent_low_ef_is_extreme_not_a_failure():
    """LV EF about 8 % with a consistent segmentation: 'clinically extreme, check', not flagged."""
    ed, es = case(6.0)[1], case(5.75)[1]
    ed[ed == MAP["RV"]], es[es == MAP["RV"]] = 0, 0  # a pipeline segmenting LV and myocardium only
    lv_myo = {"LV": MAP["LV"], "MYO": MAP["MYO"]}
    report = case_metrics(Phase(None, ed, lv_myo), Phase(None, es, lv_myo))
    assert report.lv.ef < 15
    (extreme,) = report.pair_checks
    assert extreme.rule == "ef_extreme" and extreme.kind == "extreme"
    assert "clinically extreme, check" in extreme.message
    assert not report.flagged


def test_es_equal_to_ed_is_a_failure():
    """ES labels identical to ED labels are flagged as 'ES = ED'."""
    _, labels = case()
    report = case_metrics(Phase(None, labels), Phase(None, labels.copy()))
    assert "es_equals_ed" in {c.rule for c in report.pair_checks}
    assert report.flagged


def test_stroke_volume_mismatch_is_graded():
    """LV and RV ejecting very different volumes is reported (Ruijsink 2020); close volumes are not."""
    ed = case(6.0)[1]
    close = case_metrics(Phase(None, ed), Phase(None, case(4.0, rv_radius=7.0)[1]))
    far = case_metrics(Phase(None, ed), Phase(None, case(4.0, rv_radius=8.4)[1]))
    assert "sv_mismatch" not in {c.rule for c in close.pair_checks}
    (mismatch,) = [c for c in far.pair_checks if c.rule == "sv_mismatch"]
    assert mismatch.weight > 0


def test_failed_checks_name_their_slice_in_the_csv_rows():
    """failed_slices holds the 1-based slice of each failed check, in the order of failed_checks."""
    image, labels = case()
    labels[4] = 0  # a gap on slice 5
    report = case_metrics(Phase(image, labels), Phase(image, case(4.0, rv_radius=7.0)[1]))
    row = report.rows()[0]
    messages, slices = row["failed_checks"].split("; "), row["failed_slices"].split("; ")
    assert len(messages) == len(slices)
    assert slices[next(i for i, m in enumerate(messages) if m.startswith("no labels on slice 5"))] == "5"


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_every_fault_changes_the_labels_and_leaves_the_input_alone(kind):
    """Each failure kind returns a new, different array; the good case is untouched."""
    _, labels = case()
    before = labels.copy()
    broken = make_fault(kind, labels, MAP, SPACING, np.random.default_rng(0))
    np.testing.assert_array_equal(labels, before)
    assert broken is not None and broken.shape == labels.shape
    assert (broken != labels).any()


def test_unknown_fault_and_thresholds_are_refused():
    """An unknown fault name gets one sentence; unknown rule weights too."""
    with pytest.raises(ValueError, match="Unknown fault 'melt'"):
        make_fault("melt", np.zeros((2, 4, 4), np.uint8), MAP, SPACING, np.random.default_rng(0))
    with pytest.raises(ValueError, match="Unknown rule names"):
        Thresholds(weights={"nope": 1.0})
