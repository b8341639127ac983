"""3D points: labelled voxels to millimetres, colours by structure, capped deterministic subsampling."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from synthetic import LABELS

from cmrqc_widgets.names import STRUCTURE_COLOURS, STRUCTURES
from cmrqc_widgets.render.points import Points, case_points, label_points

AFFINE = np.array(
    [
        [0.0, 0.0, -1.8, 90.0],  # col -> -x
        [0.0, -1.5, 0.0, 40.0],  # row -> -y
        [8.0, 0.0, 0.0, -30.0],  # slice -> +z
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def blobs(shape=(10, 60, 60), sizes=(9000, 900, 20), label_map=None, seed=0) -> np.ndarray:
    """Labels with exactly ``sizes`` voxels of LV, RV and MYO at random places."""
    label_map = label_map or LABELS["4dsegment"]
    labels = np.zeros(int(np.prod(shape)), np.uint8)
    where = np.random.default_rng(seed).permutation(labels.size)
    start = 0
    for name, n in zip(STRUCTURES, sizes, strict=True):
        labels[where[start : start + n]] = label_map[name]
        start += n
    return labels.reshape(shape)


def test_voxel_lands_at_its_millimetre_position():
    """A voxel at index (k, r, c) becomes the point affine @ (k, r, c, 1)."""
    labels = np.zeros((5, 6, 7), np.uint8)
    labels[2, 3, 4] = LABELS["acdc"]["MYO"]
    points = label_points(labels, AFFINE, LABELS["acdc"])
    assert points.xyz.dtype == np.float32
    np.testing.assert_allclose(points.xyz, [[90.0 - 1.8 * 4, 40.0 - 1.5 * 3, -30.0 + 8.0 * 2]], atol=1e-5)
    assert STRUCTURES[points.structure[0]] == "MYO"
    np.testing.assert_allclose(points.colours[0], np.array(STRUCTURE_COLOURS["MYO"]) / 255)


def test_structures_coloured_alike_whatever_the_numbering():
    """4Dsegment and ACDC numbering of the same anatomy give the same points, structures and colours."""
    a = label_points(blobs(label_map=LABELS["4dsegment"]), AFFINE, LABELS["4dsegment"], cap=1000)
    b = label_points(blobs(label_map=LABELS["acdc"]), AFFINE, LABELS["acdc"], cap=1000)
    np.testing.assert_array_equal(a.xyz, b.xyz)
    np.testing.assert_array_equal(a.structure, b.structure)
    np.testing.assert_array_equal(a.colours, b.colours)
    for s, name in enumerate(STRUCTURES):
        expected = np.array(STRUCTURE_COLOURS[name], np.float32) / 255
        mine = a.colours[a.structure == s]
        assert len(mine) > 0
        np.testing.assert_allclose(mine, np.broadcast_to(expected, mine.shape))


def test_cap_is_respected_and_every_structure_kept():
    """Above the cap there are exactly `cap` points, roughly proportional, and a tiny structure survives."""
    points = label_points(blobs(sizes=(9000, 900, 20)), AFFINE, LABELS["4dsegment"], cap=1000)
    assert len(points) == 1000
    kept = [int((points.structure == s).sum()) for s in range(3)]
    assert 1000 // (20 * 3) <= kept[2] <= 20
    assert kept[0] == pytest.approx(1000 * 9000 / 9920, rel=0.15)
    assert kept[1] == pytest.approx(1000 * 900 / 9920, rel=0.15)
    assert len(label_points(blobs(), AFFINE, LABELS["4dsegment"], cap=2)) == 2


def test_counts_are_before_subsampling():
    """Counts per structure report every labelled voxel, not only the kept ones."""
    points = label_points(blobs(sizes=(9000, 900, 20)), AFFINE, LABELS["4dsegment"], cap=500)
    assert points.counts == {"LV": 9000, "RV": 900, "MYO": 20}


def test_under_the_cap_every_voxel_is_kept():
    """With fewer voxels than the cap, every labelled voxel is a point."""
    labels = blobs(sizes=(300, 200, 100))
    points = label_points(labels, np.eye(4), LABELS["4dsegment"], cap=50_000)
    assert len(points) == 600
    rv = np.sort(np.argwhere(labels == LABELS["4dsegment"]["RV"]), axis=0)
    np.testing.assert_array_equal(np.sort(points.for_structure("RV"), axis=0), rv)


def test_subsampling_is_deterministic():
    """The same seed gives the same points; another seed another subset of the same voxels."""
    labels = blobs()
    first = label_points(labels, AFFINE, LABELS["4dsegment"], cap=700, seed=3)
    again = label_points(labels, AFFINE, LABELS["4dsegment"], cap=700, seed=3)
    other = label_points(labels, AFFINE, LABELS["4dsegment"], cap=700, seed=4)
    np.testing.assert_array_equal(first.xyz, again.xyz)
    assert not np.array_equal(first.xyz, other.xyz)
    everything = label_points(labels, AFFINE, LABELS["4dsegment"], cap=10**9)
    every_mm = {tuple(p) for p in everything.xyz.tolist()}
    assert {tuple(p) for p in other.xyz.tolist()} <= every_mm


def test_empty_labels_give_zero_points():
    """A volume without labels gives no points, empty arrays of the right shape and zero counts."""
    points = label_points(np.zeros((4, 5, 6), np.uint8), AFFINE, LABELS["ukbb"])
    assert len(points) == 0
    assert points.xyz.shape == (0, 3)
    assert points.colours.shape == (0, 3)
    assert points.structure.shape == (0,)
    assert points.counts == {"LV": 0, "RV": 0, "MYO": 0}
    assert points.for_structure("LV").shape == (0, 3)


def test_unknown_labels_are_left_out():
    """Label values outside the label map (here int16 with negatives) give no points."""
    labels = np.zeros((2, 3, 4), np.int16)
    labels[0, 0, 0], labels[1, 1, 1], labels[1, 2, 3] = 1, -5, 900
    points = label_points(labels, np.eye(4), LABELS["4dsegment"])
    assert points.counts == {"LV": 1, "RV": 0, "MYO": 0}
    np.testing.assert_array_equal(points.xyz, [[0, 0, 0]])


def test_for_structure_refuses_unknown_names():
    """Asking for a structure that does not exist raises ValueError."""
    points = label_points(blobs(sizes=(5, 5, 5)), AFFINE, LABELS["4dsegment"])
    assert points.for_structure("MYO").shape == (5, 3)
    with pytest.raises(ValueError, match="Unknown structure"):
        points.for_structure("Myo")


def test_bad_inputs_raise():
    """2D labels, a non-4x4 affine and a negative cap raise ValueError."""
    with pytest.raises(ValueError, match="3D"):
        label_points(np.zeros((4, 4), np.uint8), AFFINE, LABELS["ukbb"])
    with pytest.raises(ValueError, match="4x4"):
        label_points(np.zeros((2, 4, 4), np.uint8), np.eye(3), LABELS["ukbb"])
    with pytest.raises(ValueError, match="cap"):
        label_points(np.zeros((2, 4, 4), np.uint8), AFFINE, LABELS["ukbb"], cap=-1)


def test_case_points_uses_the_case_fields():
    """case_points reads labels, affine and label map of a case and honours the cap."""
    case = SimpleNamespace(labels=blobs(label_map=LABELS["ukbb"]), affine=AFFINE, label_map=LABELS["ukbb"])
    points = case_points(case, cap=300)
    assert isinstance(points, Points)
    assert len(points) == 300
    assert points.counts == {"LV": 9000, "RV": 900, "MYO": 20}


def test_flipped_and_transposed_views_give_the_same_points():
    """Labels held as a flipped, transposed view (as cases keep them) give the points of their copy."""
    base = blobs(shape=(12, 9, 10), sizes=(80, 60, 40))
    views = [base[::-1, :, ::-1], base.transpose(1, 0, 2)[:, ::-1], base.transpose(2, 1, 0)[::-1, :, ::-1]]
    for view in views:
        copy = np.ascontiguousarray(view)
        got, expected = (label_points(a, AFFINE, LABELS["4dsegment"]) for a in (view, copy))
        assert got.counts == expected.counts
        for name in STRUCTURES:
            np.testing.assert_array_equal(
                np.unique(got.for_structure(name), axis=0), np.unique(expected.for_structure(name), axis=0)
            )


def test_label_values_the_array_cannot_hold_give_no_points():
    """A label map value beyond the labels' dtype (300 for uint8) finds no voxel instead of failing."""
    labels = blobs(sizes=(5, 5, 5))
    points = label_points(labels, AFFINE, {"LV": 1, "RV": 300, "MYO": 3})
    assert points.counts == {"LV": 5, "RV": 0, "MYO": 5}
