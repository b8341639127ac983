"""Loading cases: presets, label casting, every CaseError, display orientation, the LRU cache."""

from __future__ import annotations

import gzip
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from synthetic import LABELS, phantom, write_case, write_nifti

from cmrqc_widgets.cases import CaseCache, UnknownLabelWarning, load_case, reader
from cmrqc_widgets.cases import cache as case_cache
from cmrqc_widgets.cases.layouts import custom_layout
from cmrqc_widgets.errors import CaseError, InvalidNameError


def write_pair(
    patient: Path, image: np.ndarray, labels: np.ndarray, affine=None, labels_affine=None, spacing=None
) -> Path:
    """Write the ED image and labels of ``patient`` in the 4dsegment naming."""
    kwargs = {"spacing": spacing} if spacing else {}
    write_nifti(patient / "lvsa_SR_ED.nii.gz", image, affine=affine, **kwargs)
    write_nifti(
        patient / "seg_lvsa_SR_ED.nii.gz",
        labels,
        affine=affine if labels_affine is None else labels_affine,
        **kwargs,
    )
    return patient


# --- presets and label values -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["4dsegment", "ukbb", "acdc"])
def test_each_preset_loads_with_detection(tmp_path: Path, name: str) -> None:
    """A case of every preset loads without naming the layout: float32 image, uint8 labels, counts."""
    patient = write_case(tmp_path / "patient001", name)
    ed, es = load_case(patient, "ED"), load_case(patient, "ES")
    _, raw_labels = phantom(label_map=LABELS[name])
    assert ed.layout == name
    assert ed.label_map == LABELS[name]
    assert ed.image.dtype == np.float32
    assert ed.labels.dtype == np.uint8
    assert ed.shape == (6, 32, 40) == ed.labels.shape
    assert ed.voxel_counts()["LV"] == np.count_nonzero(raw_labels == LABELS[name]["LV"])
    assert es.voxel_counts()["LV"] < ed.voxel_counts()["LV"]
    assert ed.mask("MYO").sum() == ed.voxel_counts()["MYO"]
    assert ed.warnings == ()


def test_acdc_case_reads_the_info_cfg_frames(tmp_path: Path) -> None:
    """The ACDC ES case is the frame named in Info.cfg."""
    patient = write_case(tmp_path / "patient001", "acdc")
    case = load_case(patient, "ES", "acdc")
    assert case.image_path.name == "patient001_frame12.nii.gz"
    assert case.labels_path.name == "patient001_frame12_gt.nii.gz"


def test_custom_layout_loads(tmp_path: Path) -> None:
    """A custom layout with its own names and label numbers loads and counts by structure."""
    label_map = {"LV": 10, "MYO": 20, "RV": 30}
    image, labels = phantom(label_map=label_map)
    write_nifti(tmp_path / "p1" / "ED" / "image.nii.gz", image)
    write_nifti(tmp_path / "p1" / "ED" / "mask.nii.gz", labels)
    layout = custom_layout("{phase}/image.nii.gz", "{phase}/mask.nii.gz", label_map, name="mine")
    case = load_case(tmp_path / "p1", "ed", layout)
    assert (case.layout, case.phase) == ("mine", "ED")
    assert case.voxel_counts() == {k: int(np.count_nonzero(labels == v)) for k, v in label_map.items()}


def test_uncompressed_nii_loads(tmp_path: Path) -> None:
    """Uncompressed .nii files load like .nii.gz ones."""
    image, labels = phantom()
    write_nifti(tmp_path / "p" / "sa_ED.nii", image)
    write_nifti(tmp_path / "p" / "seg_sa_ED.nii", labels)
    case = load_case(tmp_path / "p", "ED")
    assert case.layout == "ukbb"
    assert case.image_path.suffix == ".nii"
    # The file's +z slices run toward the head, so the base-to-apex display starts at its last one.
    np.testing.assert_allclose(case.image[-1, ::-1, ::-1].T, image[:, :, 0])


def test_float_labels_are_cast_to_integers(tmp_path: Path) -> None:
    """Labels stored as float (as ukbb_cardiac does) become the same uint8 labels."""
    as_float = load_case(write_case(tmp_path / "f", "ukbb", labels_dtype=np.float32), "ED")
    as_int = load_case(write_case(tmp_path / "i", "ukbb"), "ED")
    assert as_float.labels.dtype == np.uint8
    np.testing.assert_array_equal(as_float.labels, as_int.labels)


def test_nearly_integer_float_labels_are_rounded(tmp_path: Path) -> None:
    """Float labels off by rounding noise are rounded to the nearest integer."""
    image, labels = phantom()
    noisy = labels.astype(np.float32) + np.float32(1e-5)
    case = load_case(write_pair(tmp_path / "p", image, noisy), "ED")
    np.testing.assert_array_equal(case.labels[0, ::-1, ::-1].T, labels[:, :, 0])


def test_non_integer_float_labels_are_a_case_error(tmp_path: Path) -> None:
    """Labels that are not whole numbers raise a CaseError naming the file."""
    image, labels = phantom()
    write_pair(tmp_path / "p", image, labels.astype(np.float32) * 0.5)
    with pytest.raises(CaseError, match=r"seg_lvsa_SR_ED\.nii\.gz holds non-integer label values"):
        load_case(tmp_path / "p", "ED")


def test_large_label_values_use_int16_and_warn(tmp_path: Path) -> None:
    """Label values above 255 are kept in int16 and reported as unknown."""
    image, labels = phantom()
    labels = labels.astype(np.int16)
    labels[0, 0, 0] = 300
    with pytest.warns(UnknownLabelWarning, match=r"label values \[300\]"):
        case = load_case(write_pair(tmp_path / "p", image, labels), "ED")
    assert case.labels.dtype == np.int16


def test_unknown_labels_warn_and_are_recorded(tmp_path: Path) -> None:
    """Values outside the label map warn once, are listed in Case.warnings, and do not stop loading."""
    image, labels = phantom()
    labels[:2, :2, :] = 7
    write_pair(tmp_path / "p", image, labels)
    with pytest.warns(
        UnknownLabelWarning, match=r"seg_lvsa_SR_ED\.nii\.gz holds label values \[7\]"
    ) as record:
        case = load_case(tmp_path / "p", "ED")
    assert len(record) == 1
    assert len(case.warnings) == 1
    assert "4dsegment" in case.warnings[0]
    assert case.voxel_counts()["LV"] == np.count_nonzero(labels == 1)


# --- errors --------------------------------------------------------------------------------------


def test_missing_image_file(case_dir: Path) -> None:
    """A missing image file raises a CaseError naming it."""
    (case_dir / "lvsa_SR_ES.nii.gz").unlink()
    with pytest.raises(CaseError, match=r"lvsa_SR_ES\.nii\.gz is missing"):
        load_case(case_dir, "ES")


def test_missing_labels_file(case_dir: Path) -> None:
    """A missing labels file raises a CaseError naming it."""
    (case_dir / "seg_lvsa_SR_ED.nii.gz").unlink()
    with pytest.raises(CaseError, match=r"seg_lvsa_SR_ED\.nii\.gz is missing"):
        load_case(case_dir, "ED")


def test_truncated_gzip(case_dir: Path) -> None:
    """A .nii.gz cut short (an interrupted copy) raises a CaseError, not an EOFError."""
    path = case_dir / "lvsa_SR_ED.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaseError, match=r"lvsa_SR_ED\.nii\.gz is a truncated or corrupt gzip file"):
        load_case(case_dir, "ED")


def test_corrupt_gzip(case_dir: Path) -> None:
    """A .nii.gz with damaged bytes raises a CaseError naming it."""
    path = case_dir / "seg_lvsa_SR_ED.nii.gz"
    data = bytearray(path.read_bytes())
    data[20:60] = bytes(40)
    path.write_bytes(bytes(data))
    with pytest.raises(CaseError, match=r"seg_lvsa_SR_ED\.nii\.gz is a truncated or corrupt gzip file"):
        load_case(case_dir, "ED")


def test_truncated_uncompressed_nifti(tmp_path: Path) -> None:
    """A .nii whose voxel data is cut short raises a CaseError saying it is truncated."""
    image, labels = phantom()
    path = write_nifti(tmp_path / "p" / "sa_ED.nii", image)
    write_nifti(tmp_path / "p" / "seg_sa_ED.nii", labels)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CaseError, match=r"sa_ED\.nii is truncated"):
        load_case(tmp_path / "p", "ED")


def test_not_a_nifti_file(case_dir: Path) -> None:
    """A file that is not NIfTI at all (gzipped text) raises a CaseError naming it."""
    (case_dir / "lvsa_SR_ED.nii.gz").write_bytes(gzip.compress(b"<html>not found</html>" * 40))
    with pytest.raises(CaseError, match=r"lvsa_SR_ED\.nii\.gz is not a NIfTI file"):
        load_case(case_dir, "ED")


FOUR_D = ((1.8, 1.8, 8.0, 1.0), np.diag([1.8, 1.8, 8.0, 1.0]))  # spacing, affine for write_nifti


def test_4d_file_is_a_case_error(tmp_path: Path) -> None:
    """A 4D file with several frames where one phase is expected raises a CaseError."""
    image, labels = phantom()
    write_nifti(tmp_path / "p" / "lvsa_SR_ED.nii.gz", np.stack([image] * 5, axis=3), *FOUR_D)
    write_nifti(tmp_path / "p" / "seg_lvsa_SR_ED.nii.gz", labels)
    with pytest.raises(CaseError, match=r"lvsa_SR_ED\.nii\.gz is 4D with 5 frames; expected one 3D volume"):
        load_case(tmp_path / "p", "ED")


def test_4d_file_with_one_frame_is_squeezed(tmp_path: Path) -> None:
    """A 4D file whose 4th dimension is 1 loads as the 3D volume."""
    image, labels = phantom()
    write_nifti(tmp_path / "p" / "lvsa_SR_ED.nii.gz", image[..., None], *FOUR_D)
    write_nifti(tmp_path / "p" / "seg_lvsa_SR_ED.nii.gz", labels)
    case = load_case(tmp_path / "p", "ED")
    assert case.shape == (6, 32, 40)


def test_2d_file_is_a_case_error(tmp_path: Path) -> None:
    """A 2D file raises a CaseError saying it is not a 3D volume."""
    image, labels = phantom()
    write_pair(tmp_path / "p", image[:, :, 0], labels[:, :, 0], affine=np.diag([1.8, 1.8, 8.0, 1.0]))
    with pytest.raises(CaseError, match=r"lvsa_SR_ED\.nii\.gz is 2D .*expected one 3D volume"):
        load_case(tmp_path / "p", "ED")


def test_shape_mismatch(tmp_path: Path) -> None:
    """Labels of another shape than the image raise a CaseError naming the labels file."""
    image, labels = phantom()
    write_pair(tmp_path / "p", image, labels[:, :, :5])
    with pytest.raises(CaseError, match=r"seg_lvsa_SR_ED\.nii\.gz has shape \(40, 32, 5\) but its image"):
        load_case(tmp_path / "p", "ED")


def test_affine_mismatch(tmp_path: Path) -> None:
    """Labels on a shifted grid raise a CaseError saying by how much the affines differ."""
    image, labels = phantom()
    affine = np.diag([1.8, 1.8, 8.0, 1.0])
    shifted = affine.copy()
    shifted[0, 3] = 2.0
    write_pair(tmp_path / "p", image, labels, affine=affine, labels_affine=shifted)
    with pytest.raises(CaseError, match=r"seg_lvsa_SR_ED\.nii\.gz is not on the grid .* up to 2 mm"):
        load_case(tmp_path / "p", "ED")


def test_affine_rounding_noise_is_tolerated(tmp_path: Path) -> None:
    """Affines differing by float noise (well below 1e-3 mm) are the same grid."""
    image, labels = phantom()
    affine = np.diag([1.8, 1.8, 8.0, 1.0])
    write_pair(tmp_path / "p", image, labels, affine=affine, labels_affine=affine + 1e-5)
    assert load_case(tmp_path / "p", "ED").shape == (6, 32, 40)


def test_bad_phase_is_refused(case_dir: Path) -> None:
    """A phase other than ED/ES is refused before any file is read."""
    with pytest.raises(InvalidNameError, match="Phase 'MID'"):
        load_case(case_dir, "MID")


# --- orientation ------------------------------------------------------------------------------

RAS = np.array([[2.0, 0, 0, -10], [0, 3.0, 0, 20], [0, 0, 5.0, 7], [0, 0, 0, 1]])


def marked_volume() -> np.ndarray:
    """A (4, 3, 2) volume in NIfTI order with a distinct value at every voxel."""
    return np.arange(24, dtype=np.float32).reshape(4, 3, 2) + 1


def world_of(affine: np.ndarray, index) -> np.ndarray:
    return (affine @ [*index, 1])[:3]


def load_marked(tmp_path: Path, name: str, data: np.ndarray, affine: np.ndarray):
    spacing = tuple(np.linalg.norm(affine[:3, :3], axis=0))  # header pixdim consistent with the affine
    write_pair(tmp_path / name, data, (data % 3).astype(np.uint8), affine=affine, spacing=spacing)
    return load_case(tmp_path / name, "ED")


def test_display_orientation_of_a_ras_volume(tmp_path: Path) -> None:
    """RAS data: slices from head to feet (base to apex), columns toward patient left, rows from anterior."""
    data = marked_volume()
    case = load_marked(tmp_path, "ras", data, RAS)
    assert case.shape == (2, 3, 4)
    # voxel (i=1, j=2, k=1) is the most superior slice (0), most anterior row (0), 1 from the right
    assert case.image[0, 0, 4 - 1 - 1] == data[1, 2, 1]
    assert case.affine[0, 2] < 0  # column step goes toward the patient's left
    assert case.affine[1, 1] < 0  # row step goes posterior
    assert case.affine[2, 0] < 0  # slice step goes toward the feet: base first, apex last
    for index in np.ndindex(data.shape):
        s, r, c = 2 - 1 - index[2], 3 - 1 - index[1], 4 - 1 - index[0]
        assert case.image[s, r, c] == data[index]
        np.testing.assert_allclose(world_of(case.affine, (s, r, c)), world_of(RAS, index))
    assert case.spacing == (5.0, 3.0, 2.0)


def test_lps_stored_volume_displays_like_ras(tmp_path: Path) -> None:
    """The same anatomy stored x- and y-flipped (LPS-like) gives the same display and affine."""
    data = marked_volume()
    lps = RAS.copy()
    lps[0, 0], lps[1, 1] = -2.0, -3.0
    lps[0, 3] = -10 + 2.0 * 3  # first voxel now at the other end of x
    lps[1, 3] = 20 + 3.0 * 2
    ras_case = load_marked(tmp_path, "ras", data, RAS)
    lps_case = load_marked(tmp_path, "lps", data[::-1, ::-1, :].copy(), lps)
    np.testing.assert_array_equal(lps_case.image, ras_case.image)
    np.testing.assert_array_equal(lps_case.labels, ras_case.labels)
    np.testing.assert_allclose(lps_case.affine, ras_case.affine)


def test_in_plane_axes_swapped_on_disk(tmp_path: Path) -> None:
    """When the first voxel axis runs anterior-posterior, the second (left-right) becomes the columns."""
    data = marked_volume()
    swapped = np.array([[0, 2.0, 0, -10], [3.0, 0, 0, 20], [0, 0, 5.0, 7], [0, 0, 0, 1]])
    ras_case = load_marked(tmp_path, "ras", data, RAS)
    swap_case = load_marked(tmp_path, "swap", data.transpose(1, 0, 2).copy(), swapped)
    np.testing.assert_array_equal(swap_case.image, ras_case.image)
    np.testing.assert_allclose(swap_case.affine, ras_case.affine)
    assert swap_case.spacing == ras_case.spacing


def test_coronal_rows_put_superior_at_the_top(tmp_path: Path) -> None:
    """If the row axis runs mostly superior-inferior, superior is at the top (row 0)."""
    data = marked_volume()
    coronal = np.array([[2.0, 0, 0, 0], [0, 0.5, 5.0, 0], [0, 3.0, 0, 0], [0, 0, 0, 1]])
    case = load_marked(tmp_path, "cor", data, coronal)
    assert case.image[0, 0, 3] == data[0, 2, 0]  # j=2 is the most superior
    assert case.affine[2, 1] < 0


def test_oblique_affine_maps_display_indices_to_the_same_mm(tmp_path: Path) -> None:
    """For an oblique short-axis affine, every display index maps to its voxel's scanner position."""
    data = marked_volume()
    a = np.deg2rad(130)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    rot = rot @ np.array([[1, 0, 0], [0, np.cos(0.4), -np.sin(0.4)], [0, np.sin(0.4), np.cos(0.4)]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([2.0, 3.0, 5.0])
    affine[:3, 3] = [12.0, -40.0, 33.0]
    case = load_marked(tmp_path, "obl", data, affine)
    inverse = np.linalg.inv(affine)
    for index in np.ndindex(case.shape):
        ijk = np.rint(inverse @ case.affine @ [*index, 1])[:3].astype(int)
        assert case.image[index] == data[tuple(ijk)]
    assert case.affine[0, 2] < 0
    assert sorted(case.spacing) == [2.0, 3.0, 5.0]


def test_phantom_rv_is_on_the_screen_left_of_the_lv(case_dir: Path) -> None:
    """Radiological display: the RV (patient right) sits left of the LV on the screen."""
    case = load_case(case_dir, "ED")
    cols = np.arange(case.shape[2])
    lv_col = (case.mask("LV")[0].sum(axis=0) * cols).sum() / case.mask("LV")[0].sum()
    rv_col = (case.mask("RV")[0].sum(axis=0) * cols).sum() / case.mask("RV")[0].sum()
    assert rv_col < lv_col


def test_spacing_comes_from_the_header(tmp_path: Path) -> None:
    """Voxel sizes are the header's, ordered (slice, row, col)."""
    patient = write_case(tmp_path / "p", spacing=(1.25, 1.5, 10.0))
    assert load_case(patient, "ED").spacing == (10.0, 1.5, 1.25)


def test_arrays_are_read_only_and_masks_work(case_dir: Path) -> None:
    """Shared arrays cannot be written by accident; masks of absent or unknown structures behave."""
    case = load_case(case_dir, "ED")
    with pytest.raises(ValueError, match="read-only"):
        case.image[0, 0, 0] = 1
    layout = custom_layout("lvsa_SR_{phase}.nii.gz", "seg_lvsa_SR_{phase}.nii.gz", {"LV": 1, "MYO": 3})
    with pytest.warns(UnknownLabelWarning, match=r"label values \[2\]"):
        partial = load_case(case_dir, "ED", layout)
    assert not partial.mask("RV").any()
    with pytest.raises(KeyError, match="LA"):
        partial.mask("LA")
    assert case.nbytes == case.image.nbytes + case.labels.nbytes


# --- cache -------------------------------------------------------------------------------------


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every file the loader reads."""
    seen: list[Path] = []
    real = reader.read_nifti

    def counting(path: Path):
        seen.append(path)
        return real(path)

    monkeypatch.setattr(reader, "read_nifti", counting)
    return seen


def test_cache_hit_returns_the_same_object(case_dir: Path, reads: list[Path]) -> None:
    """A second get of a case returns the cached object without reading files."""
    cache = CaseCache()
    first = cache.get(case_dir, "ED")
    assert cache.get(str(case_dir / ".." / case_dir.name), "ed") is first
    assert len(reads) == 2
    assert len(cache) == 1
    assert (case_dir, "ED") in cache
    assert (case_dir, "ES") not in cache
    assert cache.nbytes == first.nbytes


def test_cache_evicts_least_recently_used_by_size(tmp_path: Path) -> None:
    """Beyond max_mb the least recently used case goes; a recently used one stays."""
    patients = [write_case(tmp_path / f"p{i}") for i in range(3)]
    size = load_case(patients[0], "ED").nbytes
    cache = CaseCache(max_mb=2.5 * size / 1e6)
    a = cache.get(patients[0], "ED")
    cache.get(patients[1], "ED")
    assert cache.get(patients[0], "ED") is a  # now p1 is the least recently used
    cache.get(patients[2], "ED")
    assert len(cache) == 2
    assert (patients[1], "ED") not in cache
    assert (patients[0], "ED") in cache
    assert cache.nbytes <= cache.max_bytes


def test_cache_keeps_the_last_case_even_if_over_budget(case_dir: Path) -> None:
    """A case larger than the whole budget is still kept as the only entry."""
    cache = CaseCache(max_mb=0)
    cache.get(case_dir, "ED")
    cache.get(case_dir, "ES")
    assert len(cache) == 1
    assert (case_dir, "ES") in cache


def test_prefetch_then_get_reads_once(case_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A get while the prefetch is still reading waits for it instead of reading again."""
    gate = threading.Event()
    seen: list[str] = []
    real = reader.read_nifti

    def slow(path: Path):
        seen.append(threading.current_thread().name)
        gate.wait(10)
        return real(path)

    monkeypatch.setattr(reader, "read_nifti", slow)
    cache = CaseCache()
    cache.prefetch(case_dir, phases=["ED"])
    result: list = []
    getter = threading.Thread(target=lambda: result.append(cache.get(case_dir, "ED")))
    getter.start()
    time.sleep(0.1)  # let the getter reach the in-flight read (ordering only, nothing is timed)
    gate.set()
    getter.join(10)
    assert len(seen) == 2
    assert all(name.startswith("cmrqc-prefetch") for name in seen)
    assert result[0] is cache.get(case_dir, "ED")
    cache.close()


def test_prefetch_both_phases_then_get(case_dir: Path, reads: list[Path]) -> None:
    """Prefetching a patient reads each phase once; later gets are cache hits."""
    cache = CaseCache(workers=2)
    cache.prefetch(case_dir)
    ed, es = cache.get(case_dir, "ED"), cache.get(case_dir, "ES")
    cache.prefetch(case_dir)
    assert cache.get(case_dir, "ED") is ed
    assert cache.get(case_dir, "ES") is es
    assert len(reads) == 4
    cache.close()


def test_concurrent_gets_read_once(case_dir: Path, reads: list[Path]) -> None:
    """Eight threads asking for the same case at once cause a single read."""
    cache = CaseCache()
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(case_dir, "ES"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(reads) == 2
    assert len({id(case) for case in got}) == 1


def test_errors_are_not_cached(case_dir: Path) -> None:
    """A failed get raises; once the file is fixed the next get loads it."""
    path = case_dir / "seg_lvsa_SR_ED.nii.gz"
    good = path.read_bytes()
    path.unlink()
    cache = CaseCache()
    with pytest.raises(CaseError, match="is missing"):
        cache.get(case_dir, "ED")
    path.write_bytes(good[:100])
    cache.prefetch(case_dir, ["ED"])
    with pytest.raises(CaseError, match="truncated or corrupt gzip"):
        cache.get(case_dir, "ED")
    path.write_bytes(good)
    assert cache.get(case_dir, "ED").labels.any()
    cache.close()


def test_prefetch_of_an_unknown_folder_is_silent_until_get(tmp_path: Path) -> None:
    """Prefetching a folder with no known layout does not raise; get does."""
    cache = CaseCache()
    cache.prefetch(tmp_path / "missing")
    with pytest.raises(CaseError, match="does not exist"):
        cache.get(tmp_path / "missing", "ED")


def test_detected_layout_is_cached_per_folder(case_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The layout of a folder is detected once for both phases."""
    calls: list = []
    real = case_cache.get_layout

    def counting(layout, patient_dir=None):
        calls.append(layout)
        return real(layout, patient_dir)

    monkeypatch.setattr(case_cache, "get_layout", counting)
    cache = CaseCache()
    cache.get(case_dir, "ED")
    cache.get(case_dir, "ES")
    assert calls.count(None) == 1


def test_cache_warns_once_for_unknown_labels(tmp_path: Path) -> None:
    """A prefetched case with unknown labels warns on its first get only."""
    image, labels = phantom()
    labels[0, 0, :] = 9
    patient = write_pair(tmp_path / "p", image, labels)
    cache = CaseCache()
    cache.prefetch(patient, ["ED"])
    with pytest.warns(UnknownLabelWarning, match=r"\[9\]"):
        case = cache.get(patient, "ED")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get(patient, "ED") is case
    cache.close()


def test_clear_empties_the_cache(case_dir: Path) -> None:
    """clear() forgets every case and resets the size."""
    cache = CaseCache()
    cache.get(case_dir, "ED")
    cache.clear()
    assert len(cache) == 0
    assert cache.nbytes == 0


def test_close_during_prefetch_neither_hangs_nor_keeps_stale_cases(
    case_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing while prefetches are queued or running: later gets read afresh and return."""
    gate = threading.Event()
    real = reader.read_nifti
    monkeypatch.setattr(reader, "read_nifti", lambda path: gate.wait(10) and real(path))
    cache = CaseCache(workers=1)
    cache.prefetch(case_dir)  # ED runs (held at the gate), ES waits in the queue
    cache.close()
    gate.set()
    assert cache.get(case_dir, "ES").phase == "ES"
    assert cache.get(case_dir, "ED").phase == "ED"
    assert len(cache) == 2


def test_cache_stays_consistent_under_concurrent_use(tmp_path: Path) -> None:
    """Many threads getting and prefetching across patients keep the size bookkeeping exact."""
    patients = [write_case(tmp_path / f"p{i}") for i in range(4)]
    size = load_case(patients[0], "ED").nbytes
    cache = CaseCache(max_mb=3.5 * size / 1e6, workers=2)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(20):
                patient = patients[rng.integers(len(patients))]
                if rng.random() < 0.3:
                    cache.prefetch(patient)
                else:
                    assert cache.get(patient, ["ED", "ES"][rng.integers(2)]).shape == (6, 32, 40)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    if cache._executor is not None:
        cache._executor.shutdown(wait=True)  # let the last prefetches land before checking
    assert errors == []
    assert cache.nbytes == sum(case.nbytes for case in cache._cases.values())
    assert cache.nbytes <= cache.max_bytes
    assert len(cache) == 3
