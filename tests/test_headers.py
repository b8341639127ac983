"""Header robustness, as a matrix of the shapes real NIfTI files come in.

Every orientation and flip of the voxel axes, oblique planes, qform-only and sform-only headers,
an ACDC-style sform without voxel scaling, arrays of any memory order, labels of any number type,
4D files of one frame, NaN and infinite voxels, headers declaring impossible sizes. Each case must
keep its voxel counts per structure, its header spacing, and its physical size in 3D.
"""

from __future__ import annotations

import gzip
import itertools
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from synthetic import LABELS, phantom

from cmrqc_widgets.cases import MAX_VOXELS, ImageValueWarning, load_case, nifti
from cmrqc_widgets.errors import CaseError
from cmrqc_widgets.render.points import case_points
from cmrqc_widgets.widgets.slice_viewer import pack_case

ZOOMS = (1.5, 2.0, 8.0)
"""Distinct voxel sizes, so a spacing read from the wrong axis shows."""

LABEL_MAP = LABELS["4dsegment"]


def axis_affines() -> list[tuple[str, np.ndarray]]:
    """All 48 axis-aligned orientations (6 axis orders x 8 flips), voxel sizes ZOOMS."""
    found = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            affine = np.eye(4)
            affine[:3, :3] = 0
            for axis, (world, sign) in enumerate(zip(perm, signs, strict=True)):
                affine[world, axis] = sign * ZOOMS[axis]
            affine[:3, 3] = (-20, 10, 5)
            name = "".join(("+" if s > 0 else "-") + "xyz"[w] for w, s in zip(perm, signs, strict=True))
            found.append((name, affine))
    return found


def oblique_affine() -> np.ndarray:
    """A double-oblique short-axis plane (rotations about two axes), voxel sizes ZOOMS."""
    a, b = np.deg2rad(35), np.deg2rad(-50)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ rx @ np.diag(ZOOMS)
    return affine


def write(path: Path, data: np.ndarray, affine: np.ndarray, *, sform: int = 2, qform: int = 1, zooms=ZOOMS):
    """A NIfTI file with the given sform/qform codes (0 = absent) and pixdim ``zooms``."""
    img = nib.Nifti1Image(data, None)
    img.set_qform(affine if qform else None, code=qform)
    img.set_sform(affine if sform else None, code=sform)
    img.header.set_zooms((*zooms, *img.header.get_zooms()[3:]))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.to_filename(path)
    return path


def write_pair(folder: Path, image: np.ndarray, labels: np.ndarray, affine: np.ndarray, **kw) -> Path:
    """The ED image and labels of a 4Dsegment-named patient folder."""
    write(folder / "lvsa_SR_ED.nii.gz", image, affine, **kw)
    write(folder / "seg_lvsa_SR_ED.nii.gz", labels, affine, **kw)
    return folder


def expected_counts(labels: np.ndarray) -> dict[str, int]:
    return {name: int(np.count_nonzero(labels == value)) for name, value in LABEL_MAP.items()}


def index_extents(mask: np.ndarray) -> np.ndarray:
    """Per voxel axis: (last - first) index holding the structure."""
    where = np.nonzero(mask)
    return np.array([w.max() - w.min() for w in where], float)


def assert_geometry(case, labels: np.ndarray, directions: np.ndarray, zooms=ZOOMS) -> None:
    """Counts, header spacing, and each structure's 3D extent along each voxel axis = index extent x spacing.

    ``directions`` holds the world direction of each voxel axis of the file (its affine's columns).
    """
    assert case.voxel_counts() == expected_counts(labels)
    assert case.spacing[0] == pytest.approx(zooms[2])  # the acquired (third) axis is the slice axis
    assert sorted(case.spacing) == pytest.approx(sorted(zooms))
    assert np.sqrt((case.affine[:3, :3] ** 2).sum(axis=0)) == pytest.approx(case.spacing)
    points = case_points(case, cap=10**7)
    units = directions / np.linalg.norm(directions, axis=0)
    for name, value in LABEL_MAP.items():
        xyz = points.for_structure(name).astype(float)
        along = xyz @ units  # coordinate along each voxel axis of the file
        extent_mm = along.max(axis=0) - along.min(axis=0)
        assert extent_mm == pytest.approx(index_extents(labels == value) * np.array(zooms), abs=1e-3), name


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """Phantom image and labels in file voxel order (x, y, z)."""
    return phantom((40, 32, 6), label_map=LABEL_MAP)


@pytest.mark.parametrize(("name", "affine"), axis_affines(), ids=[n for n, _ in axis_affines()])
def test_every_axis_orientation_and_flip_keeps_counts_spacing_and_size(tmp_path, data, name, affine) -> None:
    """All 48 orientations: same voxel counts, header spacing, 3D extents = index extents x spacing."""
    image, labels = data
    case = load_case(write_pair(tmp_path / "p", image, labels, affine), "ED")
    assert_geometry(case, labels, affine[:3, :3])
    assert case.geometry_note == ""
    world = np.abs(affine[:3, :3]).argmax(axis=0)  # world axis of each voxel axis
    box = np.ptp(case_points(case, cap=10**7).for_structure("LV"), axis=0)
    assert box[world] == pytest.approx(index_extents(labels == LABEL_MAP["LV"]) * ZOOMS, abs=1e-3)


@pytest.mark.parametrize("codes", ["qform and sform", "qform only", "sform only"])
def test_oblique_planes_from_either_header_field(tmp_path, data, codes) -> None:
    """A double-oblique plane read from the qform, the sform or both has the same geometry."""
    image, labels = data
    affine = oblique_affine()
    sform, qform = {"qform and sform": (2, 1), "qform only": (0, 1), "sform only": (2, 0)}[codes]
    case = load_case(write_pair(tmp_path / "p", image, labels, affine, sform=sform, qform=qform), "ED")
    assert_geometry(case, labels, affine[:3, :3])


def test_acdc_sform_without_scaling_takes_spacing_from_pixdim(tmp_path, data) -> None:
    """sform diag(-1,-1,1) + real pixdim (ACDC): pixdim spacing, sform directions, the note says so."""
    image, labels = data
    zooms = (1.5625, 1.5625, 10.0)
    acdc = np.diag([-1.0, -1.0, 1.0, 1.0])
    case = load_case(write_pair(tmp_path / "p", image, labels, acdc, qform=0, zooms=zooms), "ED")
    assert_geometry(case, labels, acdc[:3, :3], zooms=zooms)
    assert "no voxel scaling" in case.geometry_note and "pixdim" in case.geometry_note
    lv = np.ptp(case_points(case, cap=10**7).for_structure("LV"), axis=0)
    assert lv[2] == pytest.approx(5 * 10.0)  # six slices of 10 mm, not 5 mm flat


@pytest.mark.parametrize("memory", ["C", "Fortran", "negative strides", "transposed view"])
def test_arrays_in_any_memory_order(tmp_path, data, memory) -> None:
    """Files written from C, Fortran, flipped or transposed arrays read the same; packing works."""
    image, labels = data

    def arrange(a: np.ndarray) -> np.ndarray:
        if memory == "Fortran":
            return np.asfortranarray(a)
        if memory == "negative strides":
            return np.flip(np.flip(a, 0).copy(), 0)
        if memory == "transposed view":
            return np.ascontiguousarray(a.transpose(2, 1, 0)).transpose(2, 1, 0)
        return np.ascontiguousarray(a)

    affine = np.diag([*ZOOMS, 1.0])
    case = load_case(write_pair(tmp_path / "p", arrange(image), arrange(labels), affine), "ED")
    assert_geometry(case, labels, affine[:3, :3])
    volume = pack_case(case).volume
    assert len(zlib.decompress(volume[1])) == labels.size


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_labels_of_any_number_type(tmp_path, data, dtype) -> None:
    """Integer and float label files (UK Biobank's are float64) give the same counts."""
    image, labels = data
    affine = np.diag([*ZOOMS, 1.0])
    case = load_case(write_pair(tmp_path / "p", image, labels.astype(dtype), affine), "ED")
    assert_geometry(case, labels, affine[:3, :3])


def test_4d_file_with_one_frame_reads_as_3d(tmp_path, data) -> None:
    """A 4D file holding a single frame is that frame."""
    image, labels = data
    affine = np.diag([*ZOOMS, 1.0])
    case = load_case(write_pair(tmp_path / "p", image[..., None], labels[..., None], affine), "ED")
    assert case.image.ndim == 3
    assert_geometry(case, labels, affine[:3, :3])


def test_nan_and_infinite_voxels_warn_and_keep_a_robust_window(tmp_path, data) -> None:
    """NaN/Inf image voxels warn once, and the heart still stands out from the background on screen."""
    image, labels = data
    image = image.copy()
    image[0, 0, :] = np.nan
    image[1, 0, :] = np.inf
    image[2, 0, :] = -np.inf
    affine = np.diag([*ZOOMS, 1.0])
    with pytest.warns(ImageValueWarning, match=r"holds 18 NaN or infinite voxels"):
        case = load_case(write_pair(tmp_path / "p", image, labels, affine), "ED")
    assert case.voxel_counts() == expected_counts(labels)
    image_bytes, _, shape, window = pack_case(case).volume
    shown = np.frombuffer(zlib.decompress(image_bytes), np.uint8).reshape(shape).astype(float)
    heart = np.asarray(case.labels) > 0
    assert shown[heart].mean() - shown[~heart].mean() > 100
    assert window[1] - window[0] > 100


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_header_declaring_too_many_voxels_is_refused_before_decompressing(
    tmp_path, suffix, monkeypatch
) -> None:
    """A header declaring 4000^3 voxels is refused in one sentence, without gunzipping the file."""
    header = nib.Nifti1Header()
    header.set_data_shape((4000, 4000, 4000))
    header.set_data_dtype(np.float32)
    raw = header.binaryblock + b"\0" * 4 + b"\0" * 1000
    folder = tmp_path / "p"
    folder.mkdir()
    for name in ("lvsa_SR_ED", "seg_lvsa_SR_ED"):
        (folder / (name + suffix)).write_bytes(gzip.compress(raw) if suffix == ".nii.gz" else raw)

    def never(_):
        raise AssertionError("decompressed a refused file")

    monkeypatch.setattr(nifti, "_gunzip", never)
    with pytest.raises(
        CaseError, match=rf"declares 4000 x 4000 x 4000 = 64,000,000,000 voxels, more than the {MAX_VOXELS:,}"
    ):
        load_case(folder, "ED")
