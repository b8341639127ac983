"""The synthetic demo cohort: files, geometry, physiology, the deliberate faults, idempotence."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cmrqc_widgets.cases import load_case
from cmrqc_widgets.demo import DEMO_BROKEN, LABEL_MAP, make_demo_cohort, patient_name
from cmrqc_widgets.errors import CaseError, InvalidNameError
from cmrqc_widgets.qc.metrics import metrics_for_patient
from cmrqc_widgets.store import QCStore

FILES = ("lvsa_SR_ED.nii.gz", "lvsa_SR_ES.nii.gz", "seg_lvsa_SR_ED.nii.gz", "seg_lvsa_SR_ES.nii.gz")
NORMAL = [patient_name(i) for i in range(1, 11) if patient_name(i) not in DEMO_BROKEN]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default 10-patient cohort, generated once for this module."""
    root = tmp_path_factory.mktemp("root")
    make_demo_cohort(root, "alice")
    return root


def _labels(root: Path, patient: str, phase: str) -> np.ndarray:
    return np.asarray(nib.load(root / "demo_cohort" / patient / f"seg_lvsa_SR_{phase}.nii.gz").dataobj)


def _lv_ml(labels: np.ndarray, spacing=(1.8, 1.8, 8.0)) -> float:
    return float((labels == LABEL_MAP["LV"]).sum() * np.prod(spacing) / 1000.0)


def test_writes_ten_patients_with_four_files_each(cohort: Path) -> None:
    """The default cohort has demo001..demo010, each with both phases' image and labels."""
    folders = sorted(p.name for p in (cohort / "demo_cohort").iterdir() if p.is_dir())
    assert folders == [patient_name(i) for i in range(1, 11)]
    for folder in folders:
        assert sorted(p.name for p in (cohort / "demo_cohort" / folder).glob("*.nii.gz")) == sorted(FILES)


def test_dataset_lists_absolute_patients_in_order_without_decisions(cohort: Path) -> None:
    """users/<user>/demo.json keys are the absolute patient folders, in order, all decisions empty."""
    data = json.loads((cohort / "users" / "alice" / "demo.json").read_text())
    expected = [str((cohort / "demo_cohort" / patient_name(i)).resolve()) for i in range(1, 11)]
    assert list(data) == expected
    assert all(Path(key).is_absolute() for key in data)
    assert all(value == {"ED_Comments": "", "ES_Comments": ""} for value in data.values())


def test_returns_the_dataset_path(tmp_path: Path) -> None:
    """The return value is the dataset file of the given user and name."""
    path = make_demo_cohort(tmp_path, "bob", n_patients=1, dataset="mine.json")
    assert path == (tmp_path / "users" / "bob" / "mine.json").resolve()
    assert path.is_file()


@pytest.mark.parametrize("filename", FILES)
def test_shape_and_spacing_as_promised(cohort: Path, filename: str) -> None:
    """Every file is 200x200x12 at 1.8x1.8x8 mm with a matching affine."""
    img = nib.load(cohort / "demo_cohort" / "demo001" / filename)
    assert img.shape == (200, 200, 12)
    assert img.header.get_zooms() == pytest.approx((1.8, 1.8, 8.0))
    assert np.linalg.norm(img.affine[:3, :3], axis=0) == pytest.approx([1.8, 1.8, 8.0])
    assert img.header.get_xyzt_units()[0] == "mm"


def test_labels_are_the_4dsegment_numbers(cohort: Path) -> None:
    """A normal case uses exactly labels 0 (background), 1 LV, 2 RV, 3 myocardium in both phases."""
    for phase in ("ED", "ES"):
        labels = _labels(cohort, "demo001", phase)
        assert labels.dtype == np.uint8
        assert set(np.unique(labels)) == {0, 1, 2, 3}


def test_blood_pool_brighter_than_myocardium(cohort: Path) -> None:
    """The image is bSSFP-like: LV blood brighter than the myocardium, the lungs darkest."""
    image = np.asarray(nib.load(cohort / "demo_cohort" / "demo001" / "lvsa_SR_ED.nii.gz").dataobj)
    labels = _labels(cohort, "demo001", "ED")
    blood = np.median(image[labels == LABEL_MAP["LV"]])
    muscle = np.median(image[labels == LABEL_MAP["MYO"]])
    assert blood > 2 * muscle
    assert np.percentile(image[labels == 0], 5) < muscle


def test_lv_shrinks_toward_the_apex(cohort: Path) -> None:
    """LV cavity area per slice decreases from the base to the apex; base slice 0 has no labels."""
    areas = (_labels(cohort, "demo001", "ED") == LABEL_MAP["LV"]).sum(axis=(0, 1))
    assert areas[0] == 0
    heart = areas[1:10]
    assert np.all(np.diff(heart) <= 0)
    assert heart[0] > 3 * heart[-1] > 0


@pytest.mark.parametrize("patient", NORMAL)
def test_normal_cases_have_a_plausible_ejection_fraction(cohort: Path, patient: str) -> None:
    """ES LV volume is smaller than ED, EF 55-65 %, EDV 60-200 mL; myocardium volume about constant."""
    ed, es = _labels(cohort, patient, "ED"), _labels(cohort, patient, "ES")
    edv, esv = _lv_ml(ed), _lv_ml(es)
    assert 60 < edv < 200
    assert esv < edv
    assert 0.55 <= 1 - esv / edv <= 0.65
    myo = LABEL_MAP["MYO"]
    assert (es == myo).sum() == pytest.approx((ed == myo).sum(), rel=0.05)


def test_broken_cases_are_named_and_described() -> None:
    """DEMO_BROKEN names five demo patients, each with a short description."""
    assert len(DEMO_BROKEN) == 5
    assert set(DEMO_BROKEN) <= {patient_name(i) for i in range(1, 11)}
    assert all(isinstance(text, str) and 10 < len(text) < 80 for text in DEMO_BROKEN.values())


def test_missing_slices_case_lacks_labels_on_mid_slices(cohort: Path) -> None:
    """demo003 ED has three consecutive mid-ventricular slices with no labels; its ES is complete."""
    per_slice = (_labels(cohort, "demo003", "ED") > 0).sum(axis=(0, 1))
    empty_mid = [k for k in range(2, 9) if per_slice[k] == 0]
    assert len(empty_mid) == 3
    assert empty_mid == list(range(empty_mid[0], empty_mid[0] + 3))
    assert ((_labels(cohort, "demo003", "ES") > 0).sum(axis=(0, 1))[1:10] > 0).all()


def test_leak_case_has_lv_outside_the_myocardium(cohort: Path) -> None:
    """demo005 ES: LV label on the atrial slice and not enclosed by myocardium; a normal case has neither."""
    leak = _labels(cohort, "demo005", "ES")
    normal = _labels(cohort, "demo001", "ES")
    lv = LABEL_MAP["LV"]
    assert (leak[:, :, 0] == lv).sum() > 100
    assert (normal[:, :, 0] == lv).sum() == 0

    # In a normal case no LV pixel has a background neighbour; in the leak many do.
    def lv_touching_background(labels: np.ndarray) -> int:
        mask = labels == lv
        touching = np.zeros_like(mask)
        for axis in (0, 1):
            for step in (1, -1):
                touching |= np.roll(labels, step, axis=axis) == 0
        return int((mask & touching).sum())

    assert lv_touching_background(normal) == 0
    assert lv_touching_background(leak) > 10
    assert _lv_ml(leak) > 0.6 * _lv_ml(_labels(cohort, "demo005", "ED"))


def test_swapped_case_has_lv_and_rv_numbers_exchanged(cohort: Path) -> None:
    """demo007: the label enclosed by myocardium is 2, and the crescent beside it is 1."""
    labels = _labels(cohort, "demo007", "ED")
    k = 3
    slice_ = labels[:, :, k]
    myo_x, myo_y = np.nonzero(slice_ == LABEL_MAP["MYO"])
    centre = slice_[int(myo_x.mean()), int(myo_y.mean())]
    assert centre == LABEL_MAP["RV"]
    # The crescent lies toward small x (the patient's right) of the ring.
    crescent_x = np.nonzero(slice_ == LABEL_MAP["LV"])[0].mean()
    assert crescent_x < myo_x.mean()


def test_empty_phase_case_has_no_es_labels(cohort: Path) -> None:
    """demo008 ES labels are all zero; its ED labels are present."""
    assert _labels(cohort, "demo008", "ES").sum() == 0
    assert _labels(cohort, "demo008", "ED").sum() > 0


def test_truncated_case_fails_to_load_while_the_rest_reads(cohort: Path) -> None:
    """demo009's ES image is a truncated gzip; its other three files read normally."""
    folder = cohort / "demo_cohort" / "demo009"
    with pytest.raises((EOFError, OSError, ValueError)):
        np.asarray(nib.load(folder / "lvsa_SR_ES.nii.gz").dataobj)
    for name in ("lvsa_SR_ED.nii.gz", "seg_lvsa_SR_ED.nii.gz", "seg_lvsa_SR_ES.nii.gz"):
        assert np.asarray(nib.load(folder / name).dataobj).shape == (200, 200, 12)


def test_load_case_reads_normal_cases_in_display_orientation(cohort: Path) -> None:
    """load_case reads a normal demo case cleanly; the RV shows left of and above the LV."""
    case = load_case(cohort / "demo_cohort" / "demo001", "ED")
    assert case.shape == (12, 200, 200)
    assert case.spacing == pytest.approx((8.0, 1.8, 1.8))
    assert case.layout == "4dsegment"
    assert case.warnings == ()
    lv = np.argwhere(case.mask("LV")[4]).mean(axis=0)
    rv = np.argwhere(case.mask("RV")[4]).mean(axis=0)
    assert rv[1] < lv[1]  # patient right on the screen's left
    assert rv[0] < lv[0]  # anterior at the top


def test_load_case_reports_the_truncated_file(cohort: Path) -> None:
    """The truncated demo009 ES image is a CaseError naming the file; its ED loads."""
    folder = cohort / "demo_cohort" / "demo009"
    with pytest.raises(CaseError, match=r"lvsa_SR_ES\.nii\.gz.*truncated"):
        load_case(folder, "ES")
    assert load_case(folder, "ED").labels.any()


def test_triage_metrics_flag_exactly_the_broken_cases(cohort: Path) -> None:
    """The QC metrics flag every broken demo case and no normal one (a minor note may stay below it)."""
    for i in range(1, 11):
        report = metrics_for_patient(cohort / "demo_cohort" / patient_name(i))
        if patient_name(i) in DEMO_BROKEN:
            assert report.flagged, patient_name(i)
        else:
            assert not report.flagged, (patient_name(i), report.failed_checks)
            assert all(c.rule == "sv_mismatch" for c in report.all_checks()), report.failed_checks
            assert 55 <= report.lv.ef <= 65


def test_idempotent_keeps_files_and_decisions(tmp_path: Path) -> None:
    """A second run keeps existing case files (same mtime) and the reviewer's decisions."""
    path = make_demo_cohort(tmp_path, "alice", n_patients=2)
    case = tmp_path / "demo_cohort" / "demo001" / "lvsa_SR_ED.nii.gz"
    mtime = case.stat().st_mtime_ns
    data = json.loads(path.read_text())
    first = next(iter(data))
    data[first]["ED_Comments"] = "accept:looks fine"
    path.write_text(json.dumps(data, indent=4))
    assert make_demo_cohort(tmp_path, "alice", n_patients=2) == path
    assert case.stat().st_mtime_ns == mtime
    assert json.loads(path.read_text())[first]["ED_Comments"] == "accept:looks fine"


def test_overwrite_regenerates_files_and_dataset(tmp_path: Path) -> None:
    """overwrite=True rewrites a damaged case file and resets the dataset's decisions."""
    path = make_demo_cohort(tmp_path, "alice", n_patients=1)
    case = tmp_path / "demo_cohort" / "demo001" / "seg_lvsa_SR_ED.nii.gz"
    case.write_bytes(b"garbage")
    with QCStore(tmp_path, "alice").open("demo.json") as dataset:
        dataset.save(dataset.patients[0], "ED", "reject", "bad")
    make_demo_cohort(tmp_path, "alice", n_patients=1, overwrite=True)
    assert nib.load(case).shape == (200, 200, 12)
    fresh = QCStore(tmp_path, "alice").open("demo.json")
    assert fresh.patients == [str((tmp_path / "demo_cohort" / "demo001").resolve())]
    assert fresh.statistics().decided() == 0
    assert json.loads(path.read_text())[fresh.patients[0]] == {"ED_Comments": "", "ES_Comments": ""}


def test_missing_file_is_regenerated(tmp_path: Path) -> None:
    """A patient with a missing file is written again on the next run."""
    make_demo_cohort(tmp_path, "alice", n_patients=1)
    case = tmp_path / "demo_cohort" / "demo001" / "lvsa_SR_ES.nii.gz"
    case.unlink()
    make_demo_cohort(tmp_path, "alice", n_patients=1)
    assert nib.load(case).shape == (200, 200, 12)


def test_deterministic_by_seed(tmp_path: Path) -> None:
    """The same seed gives byte-identical files; another seed gives another patient."""
    roots = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    for root, seed in zip(roots, (7, 7, 8), strict=True):
        make_demo_cohort(root, "alice", n_patients=1, seed=seed)
    files = [root / "demo_cohort" / "demo001" / "lvsa_SR_ED.nii.gz" for root in roots]
    assert files[0].read_bytes() == files[1].read_bytes()
    assert files[0].read_bytes() != files[2].read_bytes()


def test_patients_differ(cohort: Path) -> None:
    """Two normal patients of one cohort have different LV volumes."""
    assert _lv_ml(_labels(cohort, NORMAL[0], "ED")) != _lv_ml(_labels(cohort, NORMAL[1], "ED"))


def test_custom_shape_and_spacing(tmp_path: Path) -> None:
    """shape and spacing are honoured (smaller, finer stacks)."""
    make_demo_cohort(tmp_path, "alice", n_patients=1, shape=(96, 80, 8), spacing=(2.5, 2.5, 10.0))
    img = nib.load(tmp_path / "demo_cohort" / "demo001" / "lvsa_SR_ED.nii.gz")
    assert img.shape == (96, 80, 8)
    assert img.header.get_zooms() == pytest.approx((2.5, 2.5, 10.0))


def test_more_patients_than_ten_are_normal(tmp_path: Path) -> None:
    """Patients beyond demo010 exist and are not listed as broken."""
    path = make_demo_cohort(tmp_path, "alice", n_patients=12, shape=(64, 64, 6))
    assert len(json.loads(path.read_text())) == 12
    assert "demo012" not in DEMO_BROKEN
    assert _labels(tmp_path, "demo012", "ES").sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_patients": 0}, "n_patients"),
        ({"seed": -1}, "seed"),
        ({"shape": (20, 20, 3)}, "shape"),
        ({"spacing": (1.0, 0.0, 8.0)}, "spacing"),
    ],
)
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    """Out-of-range sizes raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        make_demo_cohort(tmp_path, "alice", **kwargs)


@pytest.mark.parametrize(("user", "dataset"), [("../evil", "demo.json"), ("alice", "../x.json")])
def test_rejects_hostile_names(tmp_path: Path, user: str, dataset: str) -> None:
    """A hostile user or dataset name is refused before anything is written."""
    with pytest.raises(InvalidNameError, match="not allowed"):
        make_demo_cohort(tmp_path, user, n_patients=1, dataset=dataset)
    assert not (tmp_path / "demo_cohort").exists()
