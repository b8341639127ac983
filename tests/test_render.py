"""Rendering: window/level, colours by structure, overlay, reformats, zoom and PNG bytes."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from synthetic import LABELS, phantom

from cmrqc_widgets.names import STRUCTURE_COLOURS
from cmrqc_widgets.render import Window, slices
from cmrqc_widgets.render import window as windows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Known pixels of the phantom (x, y) in NIfTI order: LV centre, myocardial ring, RV crescent.
PIXELS = {"LV": (16, 16), "MYO": (23, 16), "RV": (28, 16)}


def decode(data: bytes) -> np.ndarray:
    """Decoded pixels of PNG bytes, as RGB when the PNG has a palette."""
    image = Image.open(io.BytesIO(data))
    if image.mode == "P":
        image = image.convert("RGB")
    return np.asarray(image)


def phantom_case(layout: str = "4dsegment", spacing=(8.0, 1.8, 1.8)) -> SimpleNamespace:
    """A duck-typed case: the phantom with slices first, as cases.Case holds it."""
    image, labels = phantom(label_map=LABELS[layout])
    return SimpleNamespace(
        image=np.ascontiguousarray(image.transpose(2, 0, 1)),
        labels=np.ascontiguousarray(labels.transpose(2, 0, 1)),
        spacing=spacing,
        label_map=LABELS[layout],
        affine=np.diag([*spacing, 1.0]),
    )


def test_encode_png_rgb_has_magic_and_shape():
    """An RGB array becomes PNG bytes that decode to the same pixels."""
    rgb = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    data = slices.encode_png(rgb)
    assert data.startswith(PNG_MAGIC)
    image = Image.open(io.BytesIO(data))
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), rgb)


def test_encode_png_grey_is_mode_l():
    """A 2D uint8 array becomes a greyscale ("L") PNG with the same pixels, at any level."""
    grey = np.arange(12 * 9, dtype=np.uint8).reshape(12, 9)
    for level in (0, 1, 9):
        image = Image.open(io.BytesIO(slices.encode_png(grey, compress_level=level)))
        assert image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), grey)


def test_encode_png_accepts_non_contiguous_views():
    """A strided view (e.g. a long-axis reformat) encodes like its copy."""
    volume = np.random.default_rng(1).integers(0, 256, (5, 8, 7), dtype=np.uint8)
    view = volume[:, 3, :]
    np.testing.assert_array_equal(decode(slices.encode_png(view)), view)


def test_encode_png_palette_maps_indices_to_colours():
    """A palette PNG shows each pixel in its palette colour."""
    codes = np.array([[0, 1], [2, 3]], np.uint8)
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    data = slices.encode_png(codes, palette=palette)
    assert Image.open(io.BytesIO(data)).mode == "P"
    np.testing.assert_array_equal(decode(data), palette[codes])


def test_encode_png_rejects_bad_arrays():
    """Non-uint8 pixels, wrong shapes and empty images raise a clear ValueError."""
    with pytest.raises(ValueError, match="uint8"):
        slices.encode_png(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="rows, cols"):
        slices.encode_png(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        slices.encode_png(np.zeros((0, 4), np.uint8))
    with pytest.raises(ValueError, match="compress_level"):
        slices.encode_png(np.zeros((4, 4), np.uint8), compress_level=11)


def test_label_lut_colours_by_structure_and_flags_the_rest():
    """The lookup table colours label values by structure; background and unknown values have no colour."""
    lut = slices.label_lut(LABELS["acdc"])
    assert lut.shape == (256, 4)
    assert lut.dtype == np.uint8
    assert tuple(lut[3, :3]) == STRUCTURE_COLOURS["LV"]
    assert tuple(lut[1, :3]) == STRUCTURE_COLOURS["RV"]
    assert tuple(lut[2, :3]) == STRUCTURE_COLOURS["MYO"]
    assert list(lut[:, 3].nonzero()[0]) == [1, 2, 3]
    assert not lut[[0, 4, 255]].any()


def test_label_lut_rejects_bad_values_and_unknown_structures():
    """Label values outside 1..255 and unknown visible names raise ValueError."""
    with pytest.raises(ValueError, match=r"1\.\.255"):
        slices.label_lut({"LV": 300})
    with pytest.raises(ValueError, match="Unknown structure"):
        slices.label_lut(LABELS["ukbb"], visible=["Myo"])


@pytest.mark.parametrize("layout", ["4dsegment", "ukbb", "acdc"])
def test_labels_coloured_by_structure_whatever_the_numbering(layout):
    """LV is red, RV green and myocardium blue on known pixels, whichever label numbers the pipeline uses."""
    _, labels = phantom(label_map=LABELS[layout])
    rgb = slices.render_labels(labels[:, :, 0], LABELS[layout])
    assert rgb.shape == (*labels.shape[:2], 3)
    for structure, (x, y) in PIXELS.items():
        assert tuple(rgb[x, y]) == STRUCTURE_COLOURS[structure]
    assert tuple(rgb[0, 0]) == (0, 0, 0)


def test_two_label_maps_give_identical_pictures():
    """4Dsegment and ACDC numbering of the same anatomy render to the same pixels in both PNG panels."""
    pngs = [slices.render_slice_pngs(phantom_case(layout), 2) for layout in ("4dsegment", "acdc")]
    np.testing.assert_array_equal(decode(pngs[0][1]), decode(pngs[1][1]))
    np.testing.assert_array_equal(decode(pngs[0][0]), decode(pngs[1][0]))
    labels = decode(pngs[1][1])
    for structure, (x, y) in PIXELS.items():
        assert tuple(labels[x, y]) == STRUCTURE_COLOURS[structure]


def test_hidden_structure_is_not_coloured():
    """A structure left out of `visible` is black in the labels panel and plain grey under the overlay."""
    case = phantom_case("ukbb")
    mri_png, labels_png = slices.render_slice_pngs(case, 1, visible=["LV", "MYO"], alpha=0.5)
    labels, mri = decode(labels_png), decode(mri_png)
    rx, ry = PIXELS["RV"]
    assert tuple(labels[rx, ry]) == (0, 0, 0)
    assert len(set(mri[rx, ry])) == 1
    lx, ly = PIXELS["LV"]
    assert tuple(labels[lx, ly]) == STRUCTURE_COLOURS["LV"]
    assert mri[lx, ly, 0] > mri[lx, ly, 1]


def test_unknown_and_out_of_range_labels_are_not_coloured():
    """Label values the map does not define, negative or above 255, stay uncoloured."""
    labels = np.array([[1, 7, -1, 300]], np.int16)
    rgb = slices.render_labels(labels, LABELS["4dsegment"])
    assert tuple(rgb[0, 0]) == STRUCTURE_COLOURS["LV"]
    assert not rgb[0, 1:].any()


def test_to_uint8_maps_window_ends_clips_and_zeroes_nan():
    """Intensities at low/high map to 0/255, outside values clip, NaN becomes 0."""
    window = Window(100.0, 355.0)
    image = np.array([[100.0, 355.0, 227.5, -1e6, 1e6, np.nan]], np.float32)
    assert windows.to_uint8(image, window).tolist() == [[0, 255, 128, 0, 255, 0]]


def test_window_validates_and_converts_level_width():
    """A window needs low < high; level/width round-trip."""
    with pytest.raises(ValueError, match="low < high"):
        Window(5.0, 5.0)
    window = Window.from_level_width(200.0, 100.0)
    assert (window.low, window.high, window.level, window.width) == (150.0, 250.0, 200.0, 100.0)


def test_auto_window_is_robust_to_one_hot_voxel():
    """One extreme voxel barely moves the percentile window."""
    image = np.random.default_rng(0).normal(300, 50, (6, 40, 32)).astype(np.float32)
    clean = windows.auto_window(image)
    image[3, 20, 16] = 1e7
    hot = windows.auto_window(image)
    assert hot.high < 1000
    assert hot.high == pytest.approx(clean.high, rel=0.01)
    assert hot.low == pytest.approx(clean.low, rel=0.01)


def test_auto_window_handles_constant_and_non_finite_volumes():
    """A constant volume gets a one-unit window; NaNs are ignored; bad percentiles raise."""
    assert windows.auto_window(np.full((2, 3, 4), 7.0)) == Window(7.0, 8.0)
    image = np.arange(100, dtype=np.float32)
    image[::10] = np.nan
    assert np.isfinite([windows.auto_window(image).low, windows.auto_window(image).high]).all()
    with pytest.raises(ValueError, match="Percentiles"):
        windows.auto_window(image, lower=50, upper=10)


def test_auto_window_subsamples_large_volumes_deterministically():
    """A large volume gives the same window every time, close to the exact percentiles."""
    image = np.random.default_rng(2).gamma(2.0, 100.0, (20, 128, 128)).astype(np.float32)
    first, second = windows.auto_window(image), windows.auto_window(image)
    assert first == second
    low, high = np.percentile(image, [1.0, 99.5])
    assert first.low == pytest.approx(low, rel=0.05)
    assert first.high == pytest.approx(high, rel=0.02)


def test_window_is_computed_once_for_the_volume_not_per_slice():
    """A dim slice stays dim: every slice uses the volume's window (no per-slice normalisation)."""
    ramp = np.tile(np.linspace(0, 100, 32, dtype=np.float32), (32, 1))
    image = np.stack([ramp, 2 * ramp])
    labels = np.zeros(image.shape, np.uint8)
    case = SimpleNamespace(image=image, labels=labels, spacing=(1.0, 1.0, 1.0), label_map=LABELS["ukbb"])
    window = windows.volume_window(image)
    assert window is windows.volume_window(image)
    assert window == windows.auto_window(image)
    dim, bright = (decode(slices.render_slice_pngs(case, k)[0]) for k in (0, 1))
    assert bright.max() == 255
    assert dim.max() < 160
    np.testing.assert_array_equal(dim[:, :, 0], windows.to_uint8(image[0], window))


def test_alpha_zero_is_pure_mri_and_alpha_one_pure_colour():
    """Overlay alpha 0 leaves the grey MRI untouched; alpha 1 paints the structure colour."""
    image, labels = phantom(label_map=LABELS["acdc"])
    image2d, labels2d = image[:, :, 0], labels[:, :, 0]
    window = windows.auto_window(image)
    grey = windows.to_uint8(image2d, window)
    plain = slices.render_mri(image2d, window)
    clear = slices.render_mri(image2d, window, labels2d, LABELS["acdc"], alpha=0.0)
    for rgb in (plain, clear):
        assert rgb.shape == (*image2d.shape, 3)
        np.testing.assert_array_equal(rgb, np.repeat(grey[:, :, None], 3, axis=2))
    solid = slices.render_mri(image2d, window, labels2d, LABELS["acdc"], alpha=1.0)
    for structure, (x, y) in PIXELS.items():
        assert tuple(solid[x, y]) == STRUCTURE_COLOURS[structure]
    np.testing.assert_array_equal(solid[0, 0], [grey[0, 0]] * 3)
    half = slices.render_mri(image2d, window, labels2d, LABELS["acdc"], alpha=0.5)
    x, y = PIXELS["LV"]
    assert half[x, y].tolist() == [
        round(grey[x, y] / 2 + 127.5),
        round(grey[x, y] / 2),
        round(grey[x, y] / 2),
    ]


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_outside_unit_interval_is_refused(alpha):
    """Overlay alpha outside [0, 1] raises ValueError."""
    image, labels = phantom()
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        slices.render_mri(image[:, :, 0], Window(0, 1), labels[:, :, 0], LABELS["4dsegment"], alpha=alpha)
    with pytest.raises(ValueError, match="alpha"):
        slices.render_slice_pngs(phantom_case(), 0, alpha=alpha)


def test_render_mri_checks_its_inputs():
    """Mismatched shapes, a missing label map and a 3D image raise ValueError."""
    image = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="differs"):
        slices.render_mri(image, Window(0, 1), np.zeros((5, 4), np.uint8), LABELS["ukbb"])
    with pytest.raises(ValueError, match="label_map"):
        slices.render_mri(image, Window(0, 1), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="2D"):
        slices.render_mri(np.zeros((2, 4, 5)), Window(0, 1))


def test_reformat_shapes_and_values():
    """Short axis, horizontal and vertical long axis take the documented planes of [slice, row, col]."""
    volume = np.arange(6 * 32 * 40).reshape(6, 32, 40)
    np.testing.assert_array_equal(slices.reformat(volume, "sa", 2), volume[2])
    np.testing.assert_array_equal(slices.reformat(volume, "hla", 10), volume[:, 10, :])
    np.testing.assert_array_equal(slices.reformat(volume, "vla", 39), volume[:, :, 39])
    assert slices.reformat(volume, "hla", 0).shape == (6, 40)
    assert slices.reformat(volume, "vla", 0).shape == (6, 32)
    assert [slices.view_length(volume.shape, v) for v in slices.VIEWS] == [6, 32, 40]


def test_reformat_refuses_bad_view_and_index():
    """An unknown view raises ValueError, an index outside the view IndexError."""
    volume = np.zeros((6, 32, 40))
    with pytest.raises(ValueError, match="Unknown view"):
        slices.reformat(volume, "axial", 0)
    with pytest.raises(IndexError, match=r"outside 0\.\.5"):
        slices.reformat(volume, "sa", 6)
    with pytest.raises(IndexError, match="outside"):
        slices.reformat(volume, "vla", -1)


def test_pixel_aspect_from_spacing():
    """Long-axis pixels are as tall as a slice is thick relative to their in-plane width."""
    spacing = (8.0, 1.5, 2.0)
    assert slices.pixel_aspect(spacing, "sa") == pytest.approx(0.75)
    assert slices.pixel_aspect(spacing, "hla") == pytest.approx(4.0)
    assert slices.pixel_aspect(spacing, "vla") == pytest.approx(8 / 1.5)
    with pytest.raises(ValueError, match="spacing"):
        slices.pixel_aspect((8.0, 0.0, 1.8), "sa")


def test_long_axis_pngs_are_stretched_by_slice_thickness():
    """An HLA/VLA panel is as tall as the stack is thick in mm, measured in in-plane pixels."""
    case = phantom_case(spacing=(8.0, 1.8, 1.8))
    for view, width in (("hla", 32), ("vla", 40)):
        mri, labels = (decode(png) for png in slices.render_slice_pngs(case, 16, view))
        assert mri.shape == (round(6 * 8.0 / 1.8), width, 3)
        assert labels.shape == mri.shape
    sa_mri, _ = slices.render_slice_pngs(case, 0, "sa")
    assert decode(sa_mri).shape == (40, 32, 3)


@pytest.mark.parametrize("zoom", [0.5, 1.0, 1.5, 2.0, 3.0])
def test_zoom_sizes(zoom):
    """Nearest-neighbour zoom scales both axes; the aspect stretches rows only."""
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert slices.zoom_nearest(rgb, zoom).shape == (round(20 * zoom), round(30 * zoom), 3)
    assert slices.zoom_nearest(rgb[:, :, 0], zoom, aspect=4.0).shape == (round(80 * zoom), round(30 * zoom))
    mri, labels = slices.render_slice_pngs(phantom_case(), 0, zoom=zoom)
    assert decode(mri).shape == (round(40 * zoom), round(32 * zoom), 3)
    assert decode(labels).shape == decode(mri).shape


def test_zoom_keeps_pixels_exact():
    """Whole-number zoom repeats each pixel as a block; fractional zoom only picks existing pixels."""
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(slices.zoom_nearest(image, 2.0), np.kron(image, np.ones((2, 2), np.uint8)))
    half = slices.zoom_nearest(image, 0.5)
    assert half.shape == (2, 2)
    assert set(half.ravel()) <= set(image.ravel())
    assert slices.zoom_nearest(image, 1.0) is image


def test_zoom_refuses_bad_factors():
    """A zero, negative or absurd zoom raises ValueError."""
    image = np.zeros((10, 10), np.uint8)
    for zoom in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="positive"):
            slices.zoom_nearest(image, zoom)
    with pytest.raises(ValueError, match="would make"):
        slices.zoom_nearest(image, 5000.0)


def test_render_slice_pngs_returns_two_pngs_of_the_slice():
    """Both panels are PNG bytes of the slice's shape, the labels panel matching render_labels."""
    case = phantom_case("ukbb")
    mri_png, labels_png = slices.render_slice_pngs(case, 3, alpha=0.3)
    assert mri_png.startswith(PNG_MAGIC)
    assert labels_png.startswith(PNG_MAGIC)
    np.testing.assert_array_equal(decode(labels_png), slices.render_labels(case.labels[3], case.label_map))
    window = windows.volume_window(case.image)
    expected = slices.render_mri(case.image[3], window, case.labels[3], case.label_map, alpha=0.3)
    np.testing.assert_array_equal(decode(mri_png), expected)


def test_auto_window_ignores_memory_layout():
    """A flipped or transposed view of a volume gets the window of its contiguous copy."""
    image = np.random.default_rng(3).normal(200, 40, (6, 40, 32)).astype(np.float32)
    view = image.transpose(0, 2, 1)[:, ::-1, ::-1]
    assert windows.auto_window(view) == windows.auto_window(np.ascontiguousarray(view))


def test_volume_window_cache_does_not_keep_volumes_alive():
    """The per-volume window cache holds weak references: a dropped volume is freed."""
    import gc
    import weakref

    image = np.random.default_rng(4).normal(0, 1, (3, 8, 8)).astype(np.float32)
    windows.volume_window(image)
    ref = weakref.ref(image)
    del image
    gc.collect()
    assert ref() is None
