"""Never the wrong patient: the images on screen are always the case the state names, or an error.

Each test reproduces, on synthetic data, a way the review screen once showed one patient's images
under another patient's name (issue 10): a reoriented volume that could not be packed, a failure
while preparing the 3D points, a remembered session pointing at a broken case.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from synthetic import REVIEWER, on_disk, write_case, write_dataset

from cmrqc_widgets.cases import load_case
from cmrqc_widgets.widgets import ReviewWidget, SliceViewer
from cmrqc_widgets.widgets import review as review_module
from cmrqc_widgets.widgets.settings import SESSION_FILE
from cmrqc_widgets.widgets.slice_viewer import CaseMismatchError, deflate, pack_case, pack_volume

# Orientations real files come in: axis-aligned RAS, LPS-like (negative diagonal), in-plane axes
# swapped (UK Biobank-like: the reorientation transposes, so the arrays are not C-contiguous) and
# oblique.
_theta = np.deg2rad(30)
AFFINES = {
    "ras": np.diag([1.8, 1.8, 8.0, 1.0]),
    "lps": np.diag([-1.8, -1.8, 8.0, 1.0]),
    "swapped": np.array([[0, -1.8, 0, 0], [-1.8, 0, 0, 0], [0, 0, 8.0, 0], [0, 0, 0, 1.0]]),
    "oblique": np.array(
        [
            [1.8 * np.cos(_theta), -1.8 * np.sin(_theta), 0, 0],
            [1.8 * np.sin(_theta), 1.8 * np.cos(_theta), 0, 0],
            [0, 0, 8.0, 0],
            [0, 0, 0, 1.0],
        ]
    ),
}


def stripes_seen(volume: np.ndarray) -> int:
    """Bright bars a reviewer counts across the top edge of the middle slice (see synthetic.sign)."""
    plane = volume[len(volume) // 2] > 200
    runs = [
        np.count_nonzero(np.diff(line.astype(np.int8)) == 1) + int(line[0])
        for line in (plane[1], plane[:, 1])
    ]
    return max(runs)


def shown_volume(w: ReviewWidget) -> np.ndarray:
    """The MRI the browser received, decoded as the JavaScript decodes it."""
    return np.frombuffer(zlib.decompress(w.slice_view.image), np.uint8).reshape(w.slice_view.shape)


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Five patients, each with its own orientation, shape and number of bright bars (1..5)."""
    folders = []
    for i, name in enumerate([*AFFINES, "ras"]):
        folder = write_case(
            tmp_path / "data" / f"p{i + 1}",
            shape=(40 + 2 * i, 32, 5 + i),
            affine=AFFINES[name],
            stripes=i + 1,
        )
        folders.append(folder)
    write_dataset(tmp_path, folders)
    return tmp_path, folders


def test_reoriented_volume_packs_in_c_order(tmp_path: Path) -> None:
    """A transposed, flipped (non-contiguous) case packs; the bytes are its pixels in C order."""
    case = load_case(write_case(tmp_path / "p", affine=AFFINES["swapped"]), "ED")
    assert not case.image.flags.c_contiguous
    image_bytes, _, shape, _ = pack_volume(case.image, case.labels, case.label_map)
    pixels = np.frombuffer(zlib.decompress(image_bytes), np.uint8).reshape(shape)
    reference, *_ = pack_volume(
        np.ascontiguousarray(case.image), np.ascontiguousarray(case.labels), case.label_map
    )
    assert zlib.decompress(image_bytes) == zlib.decompress(reference)
    assert tuple(shape) == case.shape
    assert np.corrcoef(pixels.ravel(), case.image.ravel())[0, 1] > 0.99
    assert zlib.decompress(deflate(case.labels)) == np.ascontiguousarray(case.labels).tobytes()


def test_walking_every_patient_shows_that_patients_pixels(signed) -> None:
    """Next through every patient in both phases: the viewer's identity, shape and pixels are the state's."""
    root, folders = signed
    w = ReviewWidget(root=root, user=REVIEWER, dataset="cohort.json")
    try:
        st = w.state
        for step in range(2 * len(folders)):
            if step == len(folders):
                w.phase_toggle.value = "ES"
            i = st.patient_index
            assert st.error == "" and st.case is not None
            assert w.slice_view.volume_id == w.slice_view.case_id == st.case_id
            assert w.slice_view.shows_current
            assert st.case_id.endswith(f":{st.phase}:{st.patient}")
            fresh = load_case(folders[i], st.phase)
            assert w.slice_view.shape == list(fresh.shape) == list(st.case.shape)
            assert shown_volume(w).tobytes() == zlib.decompress(pack_case(fresh).volume[0])
            assert stripes_seen(shown_volume(w)) == i + 1
            assert f"p{i + 1} {st.phase}" in w.title.value
            assert f">p{i + 1}</b>" in w.metrics_strip.html.value
            w.next_patient_button.click()
    finally:
        w.close()


def test_failed_packing_blanks_every_panel_and_the_case_can_be_decided(signed, monkeypatch) -> None:
    """Packing fails on p2: no pixels of p1 stay, one sentence names p2, its decision is saved."""
    root, folders = signed
    real = review_module.pack_case

    def fussy(case):
        if case.patient_dir.name == "p2":
            raise TypeError("memoryview: casts are restricted to C-contiguous views")
        return real(case)

    monkeypatch.setattr(review_module, "pack_case", fussy)
    w = ReviewWidget(root=root, user=REVIEWER, dataset="cohort.json", show_3d=True)
    try:
        w.next_patient_button.click()
        st = w.state
        assert st.patient.endswith("p2") and st.case is None
        assert st.error.startswith("Could not show p2 ED: preparing the slices failed (TypeError")
        assert w.slice_view.image == b"" and w.slice_view.volume_id == ""
        assert w.slice_view.message == st.error
        assert st.error in w.banner.value.replace("&#x27;", "'")
        assert st.error in w.volume_view.status.value
        assert not set(w.volume_view.figure.scatters) & set(w.volume_view.scatters.values())  # no p1 points
        assert "p2 ED" in w.title.value
        w.reject_button.click()
        assert on_disk(w, "cohort.json")[str(folders[1])]["ED_Comments"] == "reject:"
        w.next_patient_button.click()
        assert st.error == "" and w.slice_view.shows_current and stripes_seen(shown_volume(w)) == 3
    finally:
        w.close()


def test_failed_3d_points_blank_the_images_too(signed, monkeypatch) -> None:
    """Opening the 3D panel on a case whose points fail blanks the 2D images as well, with the reason."""
    root, _ = signed
    w = ReviewWidget(root=root, user=REVIEWER, dataset="cohort.json")
    try:

        def broken(case):
            raise ValueError("affine is singular")

        monkeypatch.setattr(w.volume_view, "points_for", broken)
        w.state.add_task("points", broken, lambda: w.volume_view.expanded)
        w.volume_view.toggle.value = True
        st = w.state
        assert st.case is None and st.error.startswith("Could not show p1 ED: preparing the 3D view failed")
        assert w.slice_view.image == b"" and w.slice_view.message == st.error
        assert st.error in w.volume_view.status.value
    finally:
        w.close()


@pytest.mark.parametrize("broken", ["missing file", "packing fails"])
def test_session_on_a_broken_case_opens_on_it_with_the_error(signed, monkeypatch, broken) -> None:
    """The remembered patient is broken: the screen still builds, on that patient, saying why."""
    root, folders = signed
    (root / "users" / REVIEWER / SESSION_FILE).write_text(
        json.dumps({"dataset": "cohort.json", "patient": str(folders[3])})
    )
    if broken == "missing file":
        (folders[3] / "lvsa_SR_ED.nii.gz").unlink()
    else:
        # What deflate did with a reoriented (non-contiguous) volume before it was fixed.
        monkeypatch.setattr(review_module, "pack_case", lambda case: memoryview(np.eye(3)[:, ::-1]).cast("B"))
    w = ReviewWidget(root=root, user=REVIEWER)
    try:
        st = w.state
        assert st.patient == str(folders[3]) and st.case is None
        assert st.error.startswith("Could not show p4 ED: ")
        assert w.slice_view.image == b"" and w.slice_view.message == st.error
        w.accept_button.click()
        assert on_disk(w, "cohort.json")[str(folders[3])]["ED_Comments"] == "accept:"
    finally:
        w.close()


def test_viewer_refuses_a_volume_packed_from_another_case(signed) -> None:
    """The kernel side of the identity check: another case's volume, or another identity, raises."""
    _, folders = signed
    p1, p2 = load_case(folders[0], "ED"), load_case(folders[1], "ED")
    viewer = SliceViewer()
    with pytest.raises(CaseMismatchError, match="packed from p2 ED is not the case to show, p1 ED"):
        viewer.show_case(p1, packed=pack_case(p2))
    viewer.case_id = "7:ED:/data/p1"
    with pytest.raises(CaseMismatchError, match="not the one on screen"):
        viewer.show_case(p1, identity="6:ED:/data/p1")
    assert viewer.image == b""


def test_prefetched_volume_of_another_patient_is_never_shown(signed, monkeypatch) -> None:
    """A prefetch that hands back p1's volume for p2 fails p2 with a sentence; p1's pixels go."""
    root, _ = signed
    w = ReviewWidget(root=root, user=REVIEWER, dataset="cohort.json")
    try:
        wrong = pack_case(w.state.case)
        take = w.state.prefetcher.take
        monkeypatch.setattr(
            w.state.prefetcher, "take", lambda name, *a: wrong if name == "pack" else take(name, *a)
        )
        w.next_patient_button.click()
        st = w.state
        assert st.case is None and "Could not show p2 ED" in st.error
        assert "result of p1 ED" in st.error
        assert w.slice_view.image == b""
    finally:
        w.close()


@pytest.mark.parametrize("view", ["hla", "vla"])
def test_long_axis_views_open_on_the_same_valid_slice_in_state_and_viewer(signed, view) -> None:
    """Switching to a long-axis view puts state and viewer on its middle slice, also after a move."""
    root, _ = signed
    w = ReviewWidget(root=root, user=REVIEWER, dataset="cohort.json")
    try:
        st = w.state
        for _ in range(2):
            st.view = view
            assert st.n_slices == w.slice_view.n_slices > 6
            assert st.slice == w.slice_view.slice_index == st.n_slices // 2
            st.view = "sa"
            assert st.slice == w.slice_view.slice_index == st.n_slices // 2
            st.view = view
            w.next_patient_button.click()
            assert st.slice == w.slice_view.slice_index < st.n_slices == w.slice_view.n_slices
    finally:
        w.close()
