"""Slices to pixels: window/level, structure colours, long-axis reformats, zoom and PNG bytes.

Pure functions, numpy in and numpy or PNG bytes out; no matplotlib, no widgets. Volumes are
indexed ``[slice, row, col]`` (the display orientation of :mod:`cmrqc_widgets.cases.reader`):

- ``"sa"`` (short axis) shows ``volume[index]``, rows down and columns across;
- ``"hla"`` (horizontal long axis) shows ``volume[:, index, :]``, slices down and columns across;
- ``"vla"`` (vertical long axis) shows ``volume[:, :, index]``, slices down and rows across.

Slice 0 is drawn at the top of the long-axis views. Pixels of a long-axis view are as tall as a
slice is thick (~8 mm against ~1.8 mm in-plane): :func:`pixel_aspect` gives the stretch and
:func:`zoom_nearest` applies it.

The hot path (:func:`render_slice_pngs`) does one float32 pass to map intensities to bytes, then
only uint8 lookups: a cached table per (label map, visible structures, alpha) blends grey level and
label in one ``np.take``, and the labels panel is a palette PNG whose pixels are the label values.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from ..names import STRUCTURE_COLOURS, STRUCTURES
from .window import Window, to_uint8, volume_window

VIEWS: tuple[str, ...] = ("sa", "hla", "vla")
"""Views of a volume: short axis and the two long-axis reformats."""

_MAX_SIDE = 16384  # refuse zooms that would build absurd images


def _check_visible(label_map: dict[str, int], visible: Iterable[str] | None) -> frozenset[str] | None:
    if visible is None:
        return None
    names = frozenset((visible,) if isinstance(visible, str) else visible)
    unknown = names - set(STRUCTURES) - set(label_map)
    if unknown:
        raise ValueError(f"Unknown structure(s) {sorted(unknown)}; known: {', '.join(STRUCTURES)}.")
    return names


def _lut_key(label_map: dict[str, int], visible: Iterable[str] | None) -> tuple[Any, ...]:
    for name, value in label_map.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= 255:
            raise ValueError(f"Label value of {name!r} must be an integer in 1..255, got {value!r}.")
    return tuple(sorted((k, int(v)) for k, v in label_map.items())), _check_visible(label_map, visible)


@lru_cache(maxsize=64)
def _lut(key: tuple[Any, ...]) -> np.ndarray:
    items, visible = key
    lut = np.zeros((256, 4), np.uint8)
    for name, value in items:
        if name in STRUCTURE_COLOURS and (visible is None or name in visible):
            lut[value, :3] = STRUCTURE_COLOURS[name]
            lut[value, 3] = 255
    lut.flags.writeable = False
    return lut


def label_lut(label_map: dict[str, int], visible: Iterable[str] | None = None) -> np.ndarray:
    """Colour of every label value, by structure whatever the numbering.

    Parameters
    ----------
    label_map : dict[str, int]
        Structure name (``"LV"``, ``"RV"``, ``"MYO"``) to label value (1..255).
    visible : iterable of str, optional
        Structures to colour; ``None`` colours all of them.

    Returns
    -------
    np.ndarray
        Read-only ``(256, 4)`` uint8, cached: RGB of each label value in columns 0-2 and 255 in
        column 3 where that value is coloured. Background, hidden structures and unknown label
        values are ``(0, 0, 0, 0)``: no colour.
    """
    return _lut(_lut_key(label_map, visible))


@lru_cache(maxsize=64)
def _blend_table(key: tuple[Any, ...], alpha: float) -> np.ndarray:
    # Row (label << 8 | grey) holds the blended RGB: the whole overlay becomes one np.take.
    lut = _lut(key)
    grey = np.arange(256, dtype=np.float32)
    table = np.repeat(grey.astype(np.uint8)[None, :, None], 256, axis=0).repeat(3, axis=2)
    for value in np.flatnonzero(lut[:, 3]):
        mixed = grey[:, None] * np.float32(1 - alpha) + lut[value, :3].astype(np.float32) * np.float32(alpha)
        table[value] = np.rint(mixed).astype(np.uint8)
    table = table.reshape(65536, 3)
    table.flags.writeable = False
    return table


def _label_codes(labels2d: np.ndarray) -> np.ndarray:
    """Labels as uint8 indices into a 256-entry table; values outside 0..255 become 0 (no colour)."""
    labels2d = np.asarray(labels2d)
    if labels2d.dtype == np.uint8:
        return labels2d
    if labels2d.dtype == np.bool_:
        return labels2d.view(np.uint8)
    if labels2d.dtype.kind == "f":
        labels2d = np.rint(np.nan_to_num(labels2d, nan=0.0))
    return np.where((labels2d >= 0) & (labels2d <= 255), labels2d, 0).astype(np.uint8)


def _check_alpha(alpha: float) -> float:
    if not 0.0 <= alpha <= 1.0:  # also refuses NaN
        raise ValueError(f"Overlay alpha must be in [0, 1], got {alpha!r}.")
    return float(alpha)


def _overlay(
    grey: np.ndarray, codes: np.ndarray | None, key: tuple[Any, ...] | None, alpha: float
) -> np.ndarray:
    if codes is None or key is None or alpha == 0.0 or not _lut(key)[:, 3].any():
        return np.repeat(grey[:, :, None], 3, axis=2)
    index = codes.astype(np.uint16)
    index <<= 8
    index |= grey
    return np.take(_blend_table(key, alpha), index, axis=0)


def render_mri(
    image2d: np.ndarray,
    window: Window,
    labels2d: np.ndarray | None = None,
    label_map: dict[str, int] | None = None,
    alpha: float = 0.4,
    visible: Iterable[str] | None = None,
) -> np.ndarray:
    """Greyscale MRI slice with an optional label overlay.

    Parameters
    ----------
    image2d : np.ndarray
        One slice of intensities.
    window : Window
        Intensity window, usually computed once per volume (:func:`volume_window`).
    labels2d : np.ndarray, optional
        Label slice of the same shape; ``None`` for no overlay.
    label_map : dict[str, int], optional
        Structure to label value; required with ``labels2d``.
    alpha : float
        Overlay opacity in [0, 1]: 0 shows the pure MRI, 1 the pure structure colour.
    visible : iterable of str, optional
        Structures to overlay; ``None`` overlays all.

    Returns
    -------
    np.ndarray
        ``(rows, cols, 3)`` uint8 RGB.
    """
    alpha = _check_alpha(alpha)
    image2d = np.asarray(image2d)
    if image2d.ndim != 2:
        raise ValueError(f"MRI slice must be 2D, got shape {image2d.shape}.")
    grey = to_uint8(image2d, window)
    if labels2d is None:
        return _overlay(grey, None, None, alpha)
    if label_map is None:
        raise ValueError("A label_map is needed to colour labels2d.")
    if np.shape(labels2d) != image2d.shape:
        raise ValueError(f"Label slice shape {np.shape(labels2d)} differs from MRI slice {image2d.shape}.")
    return _overlay(grey, _label_codes(labels2d), _lut_key(label_map, visible), alpha)


def render_labels(
    labels2d: np.ndarray, label_map: dict[str, int], visible: Iterable[str] | None = None
) -> np.ndarray:
    """Label slice coloured by structure on a black background: ``(rows, cols, 3)`` uint8 RGB."""
    codes = _label_codes(labels2d)
    if codes.ndim != 2:
        raise ValueError(f"Label slice must be 2D, got shape {codes.shape}.")
    return np.take(label_lut(label_map, visible)[:, :3], codes, axis=0)


def _check_view(view: str) -> int:
    if view not in VIEWS:
        raise ValueError(f"Unknown view {view!r}; use one of {', '.join(VIEWS)}.")
    return VIEWS.index(view)


def view_length(shape: tuple[int, ...], view: str) -> int:
    """Number of slices ``view`` can show in a volume of ``shape`` (slice, row, col)."""
    return int(shape[_check_view(view)])


def reformat(volume: np.ndarray, view: str, index: int) -> np.ndarray:
    """Slice ``index`` of ``view``: ``"sa"`` ``volume[index]``, ``"hla"`` ``volume[:, index, :]``,
    ``"vla"`` ``volume[:, :, index]`` (a view, not a copy)."""
    axis = _check_view(view)
    if np.ndim(volume) != 3:
        raise ValueError(f"Volume must be 3D (slice, row, col), got shape {np.shape(volume)}.")
    length = volume.shape[axis]
    if not 0 <= index < length:
        raise IndexError(f"Slice {index} is outside 0..{length - 1} of view {view!r}.")
    return volume[(slice(None),) * axis + (int(index),)]


def pixel_aspect(spacing: tuple[float, float, float], view: str) -> float:
    """Height / width in mm of one pixel of ``view``, from the voxel ``spacing`` (slice, row, col)."""
    axis = _check_view(view)
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"Voxel spacing must be three positive numbers (mm), got {spacing!r}.")
    down, across = {0: (1, 2), 1: (0, 2), 2: (0, 1)}[axis]
    return float(spacing[down]) / float(spacing[across])


@lru_cache(maxsize=128)
def _nearest(n_in: int, n_out: int) -> np.ndarray:
    index = ((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.intp)
    np.minimum(index, n_in - 1, out=index)
    index.flags.writeable = False
    return index


def _resize_axis(array: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    n_in = array.shape[axis]
    if n_out == n_in:
        return array
    if n_out % n_in == 0:
        return np.repeat(array, n_out // n_in, axis=axis)
    return np.take(array, _nearest(n_in, n_out), axis=axis)


def zoomed_shape(shape: tuple[int, ...], zoom: float = 1.0, aspect: float = 1.0) -> tuple[int, int]:
    """(rows, cols) of an image of ``shape`` after :func:`zoom_nearest`."""
    if not (math.isfinite(zoom) and zoom > 0 and math.isfinite(aspect) and aspect > 0):
        raise ValueError(f"Zoom and aspect must be positive, got zoom={zoom!r}, aspect={aspect!r}.")
    rows, cols = max(1, round(shape[0] * zoom * aspect)), max(1, round(shape[1] * zoom))
    if max(rows, cols) > _MAX_SIDE:
        raise ValueError(f"Zoom {zoom!r} with aspect {aspect!r} would make a {rows}x{cols} image.")
    return rows, cols


def zoom_nearest(rgb: np.ndarray, zoom: float = 1.0, aspect: float = 1.0) -> np.ndarray:
    """Nearest-neighbour resize of a 2D (or 2D + channels) image.

    Parameters
    ----------
    rgb : np.ndarray
        ``(rows, cols)`` or ``(rows, cols, channels)``.
    zoom : float
        Scale of both axes (the viewer offers 0.5 to 3).
    aspect : float
        Extra stretch of the rows, e.g. :func:`pixel_aspect` for long-axis views.

    Returns
    -------
    np.ndarray
        ``(round(rows * zoom * aspect), round(cols * zoom), ...)``; whole-number factors use
        ``np.repeat``, so every source pixel becomes an identical block.
    """
    rows, cols = zoomed_shape(rgb.shape, zoom, aspect)
    return _resize_axis(_resize_axis(rgb, rows, 0), cols, 1)


def encode_png(rgb_or_gray: np.ndarray, compress_level: int = 1, palette: np.ndarray | None = None) -> bytes:
    """PNG bytes of a uint8 image: ``(rows, cols)`` grey, ``(rows, cols, 3)`` RGB or ``(rows, cols, 4)`` RGBA.

    Parameters
    ----------
    rgb_or_gray : np.ndarray
        uint8 pixels.
    compress_level : int
        zlib level 0-9; 1 is fast and still small.
    palette : np.ndarray, optional
        ``(n, 3)`` uint8 colours, n <= 256: writes a palette PNG whose 2D pixels index it.
    """
    image = np.asarray(rgb_or_gray)
    if image.dtype != np.uint8:
        raise ValueError(f"PNG pixels must be uint8, got {image.dtype}.")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4) and palette is None)):
        raise ValueError(f"PNG needs a (rows, cols) or (rows, cols, 3|4) image, got shape {image.shape}.")
    if not 0 <= compress_level <= 9:
        raise ValueError(f"compress_level must be 0..9, got {compress_level!r}.")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"Cannot encode an empty image of shape {image.shape}.")
    picture = Image.fromarray(np.ascontiguousarray(image))
    if palette is not None:
        colours = np.asarray(palette, dtype=np.uint8)
        if colours.ndim != 2 or colours.shape[1] != 3 or not 1 <= len(colours) <= 256:
            raise ValueError(f"Palette must be (n <= 256, 3) colours, got shape {colours.shape}.")
        picture = Image.frombuffer("P", picture.size, np.ascontiguousarray(image), "raw", "P", 0, 1)
        picture.putpalette(colours.tobytes())
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def render_slice_pngs(
    case: Any,
    index: int,
    view: str = "sa",
    window: Window | None = None,
    alpha: float = 0.4,
    visible: Iterable[str] | None = None,
    zoom: float = 1.0,
) -> tuple[bytes, bytes]:
    """Both 2D panels of one slice as PNG bytes: (MRI with overlay, labels alone).

    Parameters
    ----------
    case : Case
        Anything with ``image``, ``labels``, ``spacing`` and ``label_map``
        (see :mod:`cmrqc_widgets.cases.reader`).
    index : int
        Slice number in ``view`` (``0 .. view_length(case.image.shape, view) - 1``).
    view : str
        ``"sa"``, ``"hla"`` or ``"vla"``; long-axis views are stretched by :func:`pixel_aspect`.
    window : Window, optional
        Intensity window; default: the volume's :func:`volume_window` (same for every slice).
    alpha : float
        Overlay opacity in [0, 1].
    visible : iterable of str, optional
        Structures to colour in both panels; ``None`` for all.
    zoom : float
        Nearest-neighbour zoom of both panels.

    Returns
    -------
    tuple[bytes, bytes]
        The MRI panel is an RGB PNG; the labels panel is a palette PNG (``Image.open(...).convert("RGB")``
        gives its colours).
    """
    alpha = _check_alpha(alpha)
    key = _lut_key(case.label_map, visible)
    if window is None:
        window = volume_window(case.image)
    grey = to_uint8(reformat(case.image, view, index), window)
    codes = _label_codes(reformat(case.labels, view, index))
    aspect = pixel_aspect(case.spacing, view)
    if zoom != 1.0 or aspect != 1.0:
        # Zoom the one-byte planes before colouring: three times fewer bytes to copy.
        grey = zoom_nearest(grey, zoom, aspect)
        codes = zoom_nearest(codes, zoom, aspect)
    mri_png = encode_png(_overlay(grey, codes, key, alpha))
    labels_png = encode_png(codes, palette=_lut(key)[:, :3])
    return mri_png, labels_png
