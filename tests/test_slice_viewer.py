"""SliceViewer without a browser: packing, trait validation and the synced state."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import numpy as np
import pytest
import traitlets
from synthetic import LABELS, phantom

from cmrqc_widgets.names import STRUCTURES
from cmrqc_widgets.widgets.slice_viewer import UNKNOWN_CODE, SliceViewer, pack_volume


def make_case(shape=(40, 32, 6), layout="4dsegment", spacing=(8.0, 1.8, 1.8)) -> SimpleNamespace:
    """A duck-typed Case in display order (slices, rows, cols) built from the shared phantom."""
    image, labels = phantom(shape, label_map=LABELS[layout])
    return SimpleNamespace(
        image=np.ascontiguousarray(image.transpose(2, 1, 0)),
        labels=np.ascontiguousarray(labels.transpose(2, 1, 0)),
        label_map=LABELS[layout],
        spacing=spacing,
    )


def unpack(data: bytes, shape) -> np.ndarray:
    return np.frombuffer(zlib.decompress(data), np.uint8).reshape(shape)


def test_pack_round_trip_keeps_shape_and_order():
    """The packed image decompresses to the volume's shape, in C order, with the bright voxels bright."""
    case = make_case()
    image_bytes, labels_bytes, shape, window = pack_volume(case.image, case.labels, case.label_map)
    assert shape == [6, 32, 40]
    image = unpack(image_bytes, shape)
    codes = unpack(labels_bytes, shape)
    # The phantom's blood pools are bright (400), its surroundings dark (100); LV is code 1.
    assert image[codes == 1].mean() > 200 > image[codes == 0].mean()
    expected = np.clip(case.image, *np.percentile(case.image, [0.5, 99.9]))
    assert np.corrcoef(image.ravel(), expected.ravel())[0, 1] > 0.999
    assert 0 <= window[0] < window[1] <= 255


@pytest.mark.parametrize("layout", ["4dsegment", "ukbb", "acdc"])
def test_structure_codes_do_not_depend_on_label_numbers(layout):
    """Each structure gets the same code (1 + its index in STRUCTURES) whatever the pipeline's label value."""
    case = make_case(layout=layout)
    _, labels_bytes, shape, _ = pack_volume(case.image, case.labels, case.label_map)
    codes = unpack(labels_bytes, shape)
    for i, name in enumerate(STRUCTURES):
        np.testing.assert_array_equal(codes == i + 1, case.labels == case.label_map[name])
    np.testing.assert_array_equal(codes == 0, case.labels == 0)


def test_unknown_label_value_becomes_255():
    """A label value the label map does not name is sent as the unknown code, not dropped."""
    case = make_case()
    labels = case.labels.astype(np.int16)
    labels[0, 0, :3] = [7, -2, 300]
    _, labels_bytes, shape, _ = pack_volume(case.image, labels, case.label_map)
    codes = unpack(labels_bytes, shape)
    assert list(codes[0, 0, :3]) == [UNKNOWN_CODE] * 3


def test_pack_rejects_mismatched_labels():
    """Labels of another shape raise one sentence naming both shapes."""
    with pytest.raises(ValueError, match=r"labels shape \(2, 2, 2\) does not match"):
        pack_volume(np.zeros((3, 2, 2)), np.zeros((2, 2, 2)), {})


def test_flat_image_packs_without_dividing_by_zero():
    """A constant image packs to zeros with a full default window."""
    image_bytes, _, shape, window = pack_volume(np.full((2, 3, 4), 7.0), None, {})
    assert not unpack(image_bytes, shape).any()
    assert window == [0.0, 255.0]


def test_phase_bytes_well_under_old_app():
    """A 200x200x12 phase (noisy phantom, the worst case for compression) is sent in well under 1.5 MB."""
    case = make_case(shape=(200, 200, 12))
    viewer = SliceViewer()
    viewer.show_case(case)
    print(f"\nbytes per 200x200x12 phase: {viewer.volume_nbytes()}")
    assert viewer.volume_nbytes() < 600_000


def test_show_case_sets_volume_and_clears_message():
    """Showing a case sends shape, spacing and the case's window, and hides any message."""
    viewer = SliceViewer()
    viewer.show_message("The labels file is corrupt.")
    viewer.show_case(make_case())
    assert viewer.shape == [6, 32, 40]
    assert viewer.spacing == [8.0, 1.8, 1.8]
    assert viewer.message == ""
    assert viewer.window == viewer.default_window
    assert viewer.image and viewer.labels


def test_show_case_sends_one_message(monkeypatch):
    """A patient move sends its volume once (two binary buffers), then every trait in one batch."""
    viewer = SliceViewer()
    sent, volumes = [], []
    monkeypatch.setattr(viewer, "send_state", lambda key=None: sent.append(set(key or ())))
    monkeypatch.setattr(viewer, "send", lambda content, buffers=None: volumes.append((content, buffers)))
    viewer.show_case(make_case(), slice_index=2)
    assert len(sent) == 1
    assert {"volume_key", "volume_id", "shape", "spacing", "window", "slice_index"} <= set(sent[0])
    [(content, buffers)] = volumes
    assert content["type"] == "volume" and content["key"] == viewer.volume_key
    assert buffers == [viewer.image, viewer.labels]


@pytest.mark.parametrize(("view", "length"), [("sa", 6), ("hla", 32), ("vla", 40)])
def test_slice_index_is_clamped_per_view(view, length):
    """The slice index stays inside the current view's length."""
    viewer = SliceViewer()
    viewer.show_case(make_case())
    viewer.view = view
    assert viewer.n_slices == length
    viewer.slice_index = 1000
    assert viewer.slice_index == length - 1
    viewer.slice_index = -5
    assert viewer.slice_index == 0


def test_switching_to_a_shorter_view_clamps_the_index():
    """Going from a long-axis index to the short axis keeps the index valid."""
    viewer = SliceViewer()
    viewer.show_case(make_case())
    viewer.view = "vla"
    viewer.slice_index = 30
    viewer.view = "sa"
    assert viewer.slice_index == 5


def test_set_view_goes_to_the_middle():
    """set_view without an index shows the middle slice of the new view."""
    viewer = SliceViewer()
    viewer.show_case(make_case())
    viewer.set_view("hla")
    assert (viewer.view, viewer.slice_index) == ("hla", 16)


def test_show_case_clamps_the_kept_index():
    """A patient with fewer slices keeps the slice index within its stack."""
    viewer = SliceViewer()
    viewer.show_case(make_case(shape=(40, 32, 10)), slice_index=9)
    viewer.show_case(make_case(shape=(40, 32, 4)))
    assert viewer.slice_index == 3


def test_step_moves_and_stops_at_the_ends():
    """step() moves by delta and stops at the first and last slice."""
    viewer = SliceViewer()
    viewer.show_case(make_case(), slice_index=0)
    assert viewer.step(2) == 2
    assert viewer.step(10) == 5
    assert viewer.step(-10) == 0


def test_show_message_drops_the_volume():
    """A message replaces the images: no volume bytes, no slices, play stopped."""
    viewer = SliceViewer()
    viewer.show_case(make_case(), slice_index=3)
    viewer.playing = True
    viewer.show_message("no patients")
    assert (viewer.message, viewer.image, viewer.labels) == ("no patients", b"", b"")
    assert viewer.n_slices == 0
    assert (viewer.slice_index, viewer.playing) == (0, False)


def test_settings_are_clamped():
    """alpha, zoom, fps and the window are kept inside their ranges."""
    viewer = SliceViewer(alpha=3, zoom=10, fps=100)
    assert (viewer.alpha, viewer.zoom, viewer.fps) == (1.0, 3.0, 20)
    viewer.alpha, viewer.zoom, viewer.fps = -1, 0.1, 0
    assert (viewer.alpha, viewer.zoom, viewer.fps) == (0.0, 0.5, 1)
    viewer.window = [-10, 300]
    assert viewer.window == [0.0, 255.0]


def test_bad_window_and_structures_are_refused():
    """An inverted window and an unknown structure name raise a clear error."""
    viewer = SliceViewer()
    with pytest.raises(traitlets.TraitError, match="must be above its low"):
        viewer.window = [200, 100]
    with pytest.raises(traitlets.TraitError, match="Unknown structures"):
        viewer.visible = ["LV", "AORTA"]


def test_defaults_match_the_old_app():
    """Overlay on at 40 %, 5 frames/s, all structures shown in red, green, blue."""
    viewer = SliceViewer()
    assert (viewer.overlay, viewer.alpha, viewer.fps, viewer.view) == (True, 0.4, 5, "sa")
    assert viewer.visible == list(STRUCTURES)
    assert viewer.colours == {"LV": "#ff0000", "RV": "#00ff00", "MYO": "#0000ff"}


def test_settings_are_synced_to_the_browser():
    """Every setting the client paints from is a synced trait, and the client JS is loaded from the file."""
    viewer = SliceViewer()
    synced = set(viewer.keys)
    assert {
        "volume_key", "shape", "spacing", "slice_index", "view", "overlay", "alpha", "window",
        "zoom", "visible", "colours", "structures", "playing", "fps", "message",
    } <= synced
    assert not {"image", "labels"} & synced  # the volume travels in messages, kept by key
    assert "export default" in viewer._esm
    assert "DecompressionStream" in viewer._esm


def test_state_from_the_browser_is_validated():
    """A slice index sent by the client (wheel, play) goes through the same clamp."""
    viewer = SliceViewer()
    viewer.show_case(make_case())
    viewer.set_state({"slice_index": 4})
    assert viewer.slice_index == 4
    viewer.set_state({"slice_index": 99})
    assert viewer.slice_index == 5


def phase_of(patient: str, phase: str, seed: int = 0) -> SimpleNamespace:
    """``make_case`` as one phase of one patient folder (what ``pack_case`` records)."""
    case = make_case()
    case.image = case.image + seed
    return SimpleNamespace(**vars(case), patient_dir=f"/data/{patient}", phase=phase)


def test_other_phase_is_named_only_for_the_same_patient(monkeypatch):
    """``other_key`` names an offered volume only when it is this patient's other phase; a case of
    another patient clears it, and the ED shown a moment ago is the other phase of ES."""
    from cmrqc_widgets.render.packing import pack_case

    viewer = SliceViewer()
    monkeypatch.setattr(viewer, "send", lambda content, buffers=None: None)
    ed, es = phase_of("p1", "ED"), phase_of("p1", "ES", seed=5)
    viewer.show_case(ed)
    viewer.offer([pack_case(phase_of("p2", "ES")), pack_case(phase_of("p1", "ED", seed=9))])
    assert viewer.other_key == ""  # another patient's ES, or this patient's ED again: not the other phase
    viewer.offer([pack_case(phase_of("p2", "ED")), pack_case(es)])
    assert viewer.other_key == pack_case(es).key
    viewer.show_case(phase_of("p2", "ED"))
    assert viewer.other_key == ""  # p1's ES is held, but it is not p2's
    viewer.show_case(phase_of("p2", "ES"))
    assert viewer.other_key == pack_case(phase_of("p2", "ED")).key  # the case on screen a moment ago
